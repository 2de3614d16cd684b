//! Cursor pagination for lists that grow: a page is `limit` rows ordered by (time, id)
//! descending, and the cursor is the (time, id) of the last row seen, so a page never repeats
//! or skips a row however many are added meanwhile.

use time::OffsetDateTime;

use crate::problem::ApiError;

/// The default and largest page sizes.
pub(crate) const DEFAULT_LIMIT: i64 = 50;
pub(crate) const MAX_LIMIT: i64 = 100;

fn encode_cursor(at: OffsetDateTime, id: &str) -> String {
    format!("{}~{id}", at.unix_timestamp_nanos() / 1000)
}

fn decode_cursor(cursor: &str) -> Result<(OffsetDateTime, String), ApiError> {
    let bad = || ApiError::BadRequest("cursor is not one this API gave".to_owned());
    let (micros, id) = cursor.split_once('~').ok_or_else(bad)?;
    let micros: i128 = micros.parse().map_err(|_| bad())?;
    let nanos = micros.checked_mul(1000).ok_or_else(bad)?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?;
    Ok((at, id.to_owned()))
}

/// Where a page starts and how long it is, from a list's `cursor` and `limit` parameters.
pub(crate) type Window = (Option<(OffsetDateTime, String)>, i64);

/// The `cursor` and `limit` a list was asked for, checked.
pub(crate) fn window(cursor: Option<&str>, asked: Option<i64>) -> Result<Window, ApiError> {
    Ok((cursor.map(decode_cursor).transpose()?, limit(asked)?))
}

/// The page size asked for, checked.
fn limit(asked: Option<i64>) -> Result<i64, ApiError> {
    let limit = asked.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )))
    }
}

/// Cuts a result fetched with `limit + 1` rows to `limit`, with the cursor for the next page
/// when there is one.
pub(crate) fn page<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (OffsetDateTime, &str),
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(|row| {
        let (at, id) = key(row);
        encode_cursor(at, id)
    });
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_to_the_microsecond() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let cursor = encode_cursor(at, "abc~def");
        let (back, id) =
            decode_cursor(&cursor).unwrap_or((OffsetDateTime::UNIX_EPOCH, String::new()));
        assert_eq!(back, at);
        assert_eq!(id, "abc~def");
        assert!(decode_cursor("nope").is_err());
    }

    #[test]
    fn a_cursor_out_of_time_s_range_is_refused_not_wrapped() {
        for micros in [
            i128::MAX,
            i128::MIN,
            i128::MAX / 1000 + 1,
            253_402_300_800_000_000,
        ] {
            let cursor = format!("{micros}~x");
            let refused = decode_cursor(&cursor);
            assert!(
                matches!(&refused, Err(ApiError::BadRequest(_))),
                "{cursor}: {:?}",
                refused.map(|(at, _)| at)
            );
        }
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_came() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let rows = vec!["a", "b", "c"];
        let (kept, next) = page(rows.clone(), 3, |r| (at, r));
        assert_eq!((kept.len(), next), (3, None));
        let (kept, next) = page(rows, 2, |r| (at, r));
        assert_eq!(kept, vec!["a", "b"]);
        assert_eq!(next, Some(encode_cursor(at, "b")));
    }
}
