//! Timestamps as both databases should hold them: `TIMESTAMPTZ` on PostgreSQL, and on SQLite
//! fixed-width UTC text (`2026-01-02T03:04:05.000000Z`) so that text order is time order and
//! range filters work. sqlx's own SQLite encoding drops trailing zeros, which breaks both.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteTypeInfo, SqliteValueRef};
use sqlx::{Database, Decode, Encode, Postgres, Sqlite, Type};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

const SQLITE_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DbTime(pub OffsetDateTime);

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for DbTime {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        let utc = self.0.to_offset(time::UtcOffset::UTC);
        Encode::<Sqlite>::encode(utc.format(SQLITE_FORMAT)?, buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        let time = time::PrimitiveDateTime::parse(text, SQLITE_FORMAT)?;
        Ok(Self(time.assume_utc()))
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <OffsetDateTime as Decode<Postgres>>::decode(value).map(Self)
    }
}

/// A nullable timestamp column, for `#[sqlx(try_from = "MaybeDbTime")]` on an
/// `Option<OffsetDateTime>` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MaybeDbTime(pub Option<OffsetDateTime>);

impl From<MaybeDbTime> for Option<OffsetDateTime> {
    fn from(value: MaybeDbTime) -> Self {
        value.0
    }
}

impl Type<Sqlite> for MaybeDbTime {
    fn type_info() -> SqliteTypeInfo {
        <DbTime as Type<Sqlite>>::type_info()
    }
}

impl<'r> Decode<'r, Sqlite> for MaybeDbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        if sqlx::ValueRef::is_null(&value) {
            return Ok(Self(None));
        }
        <DbTime as Decode<Sqlite>>::decode(value).map(|t| Self(Some(t.0)))
    }
}

impl Type<Postgres> for MaybeDbTime {
    fn type_info() -> PgTypeInfo {
        <DbTime as Type<Postgres>>::type_info()
    }
}

impl<'r> Decode<'r, Postgres> for MaybeDbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        if sqlx::ValueRef::is_null(&value) {
            return Ok(Self(None));
        }
        <DbTime as Decode<Postgres>>::decode(value).map(|t| Self(Some(t.0)))
    }
}

/// A keyset cursor, (time, id) of the last row seen, as two nullable parameters: `($n IS NULL
/// OR t < $n OR (t = $n AND id < $m))`.
pub(crate) fn cursor_binds(
    before: Option<(OffsetDateTime, String)>,
) -> (Option<DbTime>, Option<String>) {
    match before {
        Some((at, id)) => (Some(DbTime(at)), Some(id)),
        None => (None, None),
    }
}
