//! Closed sets of values that are stored and sent as text (statuses, roles, kinds): one macro
//! gives each its spelling, its parser and its error, so a database row or a request with any
//! other value is refused where it is read instead of travelling on as a string.

/// A text that is none of a closed set's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a known {kind} (expected one of {expected})")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
    /// The values it could have been, comma separated.
    pub expected: String,
}

/// Declares a fieldless enum with one spelling per variant:
///
/// ```
/// ajutant_core::text_enum! {
///     /// Where a thing is.
///     pub enum Place("place") { Here => "here", There => "there" }
/// }
/// assert_eq!(Place::parse("there"), Some(Place::There));
/// assert_eq!(Place::Here.as_str(), "here");
/// ```
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident($kind:literal) {
            $($(#[$variant_meta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::text_enum::UnknownValue;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text).ok_or_else(|| $crate::text_enum::UnknownValue {
                    kind: $kind,
                    value: text.to_owned(),
                    expected: [$($text),+].join(", "),
                })
            }
        }

        /// For columns read with `#[sqlx(try_from = "String")]`.
        impl TryFrom<String> for $name {
            type Error = $crate::text_enum::UnknownValue;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                text.parse()
            }
        }
    };
}
