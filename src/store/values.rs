//! Values in and out of SQL: parameters bound to `?`, and columns read back in order.
//!
//! Text goes as UTF-8 (UTF-16 on SQL Server, for `NVARCHAR`); times are UTC without zone, to the
//! microsecond, as ODBC timestamps or, on SQLite, as fixed-width text whose order is time order.
//! Columns are read left to right, as `SQLGetData` wants.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;
use odbc_api::buffers::Indicator;
use odbc_api::parameter::{InputParameter, VarCharBox, VarWCharBox, WithDataType};
use odbc_api::sys::Timestamp as OdbcTimestamp;
use odbc_api::{CursorRow, DataType, Nullable};

use super::Dialect;
use super::conn::DbError;

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Text, or NULL.
    Text(Option<String>),
    /// An integer, or NULL.
    Int(Option<i64>),
    /// A number, or NULL.
    Float(Option<f64>),
    /// A UTC instant (kept to the microsecond), or NULL.
    Time(Option<Timestamp>),
}

impl Value {
    /// Text that is never NULL.
    pub fn text(s: &str) -> Value {
        Value::Text(Some(s.to_string()))
    }

    pub(crate) fn bind(&self, dialect: Dialect) -> Box<dyn InputParameter> {
        match self {
            Value::Text(s) if dialect.wide_text() => {
                let units: Vec<u16> = s.as_deref().unwrap_or_default().encode_utf16().collect();
                if units.is_empty() {
                    // A one-unit buffer keeps the declared size at 1: SQL Server reads a size
                    // of 0 as NVARCHAR(MAX).
                    let indicator = if s.is_some() {
                        Indicator::Length(0)
                    } else {
                        Indicator::Null
                    };
                    Box::new(VarWCharBox::from_buffer(
                        vec![0u16].into_boxed_slice(),
                        indicator,
                    ))
                } else {
                    Box::new(VarWCharBox::from_vec(units))
                }
            }
            Value::Text(s) => match s {
                Some(s) => Box::new(VarCharBox::from_string(s.clone())),
                None => Box::new(VarCharBox::null()),
            },
            Value::Int(i) => Box::new(i.map(Nullable::new).unwrap_or_else(Nullable::null)),
            Value::Float(f) => Box::new(f.map(Nullable::new).unwrap_or_else(Nullable::null)),
            Value::Time(t) if dialect.times_as_text() => Box::new(match t {
                Some(t) => VarCharBox::from_string(time_text(*t)),
                None => VarCharBox::null(),
            }),
            Value::Time(t) => Box::new(WithDataType::new(
                t.map(|t| Nullable::new(odbc_time(t)))
                    .unwrap_or_else(Nullable::null),
                DataType::Timestamp { precision: 6 },
            )),
        }
    }
}

fn utc(t: Timestamp) -> DateTime {
    Offset::UTC.to_datetime(t)
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC: fixed width, so text order is time order.
pub(crate) fn time_text(t: Timestamp) -> String {
    let d = utc(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.subsec_nanosecond() / 1000
    )
}

fn odbc_time(t: Timestamp) -> OdbcTimestamp {
    let d = utc(t);
    OdbcTimestamp {
        year: d.year(),
        month: d.month() as u16,
        day: d.day() as u16,
        hour: d.hour() as u16,
        minute: d.minute() as u16,
        second: d.second() as u16,
        // Microseconds: what every dialect's column keeps.
        fraction: (d.subsec_nanosecond() as u32 / 1000) * 1000,
    }
}

fn from_odbc_time(t: &OdbcTimestamp) -> Result<Timestamp, DbError> {
    let d = jiff::civil::DateTime::new(
        t.year,
        t.month as i8,
        t.day as i8,
        t.hour as i8,
        t.minute as i8,
        t.second as i8,
        t.fraction as i32,
    )
    .map_err(|e| DbError::data(format!("a stored time is invalid: {e}")))?;
    Offset::UTC
        .to_timestamp(d)
        .map_err(|e| DbError::data(format!("a stored time is out of range: {e}")))
}

fn parse_time_text(text: &str) -> Result<Timestamp, DbError> {
    let d: DateTime = text
        .trim()
        .replacen(' ', "T", 1)
        .parse()
        .map_err(|e| DbError::data(format!("a stored time `{text}` is invalid: {e}")))?;
    Offset::UTC
        .to_timestamp(d)
        .map_err(|e| DbError::data(format!("a stored time is out of range: {e}")))
}

/// Reads the columns of one row, left to right.
pub(crate) struct Cols<'r, 's> {
    row: &'r mut CursorRow<'s>,
    dialect: Dialect,
    next: u16,
}

impl<'r, 's> Cols<'r, 's> {
    /// Starts reading `row` at its first column.
    pub fn new(row: &'r mut CursorRow<'s>, dialect: Dialect) -> Self {
        Cols {
            row,
            dialect,
            next: 0,
        }
    }
}

impl Cols<'_, '_> {
    fn advance(&mut self) -> u16 {
        self.next += 1;
        self.next
    }

    /// The next column as text.
    pub fn text(&mut self) -> Result<Option<String>, DbError> {
        let col = self.advance();
        if self.dialect.wide_text() {
            let mut buf = Vec::new();
            let present = self.row.get_wide_text(col, &mut buf)?;
            Ok(present.then(|| String::from_utf16_lossy(&buf)))
        } else {
            let mut buf = Vec::new();
            let present = self.row.get_text(col, &mut buf)?;
            Ok(present.then(|| String::from_utf8_lossy(&buf).into_owned()))
        }
    }

    /// The next column as text that must be present.
    pub fn required_text(&mut self) -> Result<String, DbError> {
        let col = self.next + 1;
        self.text()?
            .ok_or_else(|| DbError::data(format!("column {col} is unexpectedly NULL")))
    }

    /// The next column as an integer.
    pub fn int(&mut self) -> Result<Option<i64>, DbError> {
        let col = self.advance();
        let mut value = Nullable::<i64>::null();
        self.row.get_data(col, &mut value)?;
        Ok(value.into_opt())
    }

    /// The next column as a number.
    pub fn float(&mut self) -> Result<Option<f64>, DbError> {
        let col = self.advance();
        let mut value = Nullable::<f64>::null();
        self.row.get_data(col, &mut value)?;
        Ok(value.into_opt())
    }

    /// The next column as a UTC instant.
    pub fn time(&mut self) -> Result<Option<Timestamp>, DbError> {
        if self.dialect.times_as_text() {
            return self.text()?.map(|t| parse_time_text(&t)).transpose();
        }
        let col = self.advance();
        let mut value = Nullable::<OdbcTimestamp>::null();
        self.row.get_data(col, &mut value)?;
        value.into_opt().map(|t| from_odbc_time(&t)).transpose()
    }

    /// The next column as a UTC instant that must be present.
    pub fn required_time(&mut self) -> Result<Timestamp, DbError> {
        let col = self.next + 1;
        self.time()?
            .ok_or_else(|| DbError::data(format!("column {col} is unexpectedly NULL")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text_is_fixed_width_utc_microseconds() {
        let t: Timestamp = "2026-03-04T05:06:07.123456789Z".parse().expect("time");
        assert_eq!(time_text(t), "2026-03-04 05:06:07.123456");
        let back = parse_time_text(&time_text(t)).expect("parse");
        assert_eq!(back.to_string(), "2026-03-04T05:06:07.123456Z");
        let t: Timestamp = "2026-03-04T05:06:07Z".parse().expect("time");
        assert_eq!(time_text(t), "2026-03-04 05:06:07.000000");
        let o = odbc_time(t);
        assert_eq!(from_odbc_time(&o).expect("back"), t);
    }

    #[test]
    fn sql_server_binds_text_as_utf16_with_a_nonzero_size() {
        use odbc_api::handles::HasDataType;
        use std::num::NonZeroUsize;
        let ty = |v: Value, d: Dialect| v.bind(d).data_type();
        let one = NonZeroUsize::new(1);
        assert_eq!(
            ty(Value::Text(None), Dialect::SqlServer),
            DataType::WVarchar { length: one }
        );
        assert_eq!(
            ty(Value::text(""), Dialect::SqlServer),
            DataType::WVarchar { length: one }
        );
        assert_eq!(
            ty(Value::text("Grüße 日本"), Dialect::SqlServer),
            DataType::WVarchar {
                length: NonZeroUsize::new(8)
            }
        );
        assert!(matches!(
            ty(Value::text(&"t".repeat(5000)), Dialect::SqlServer),
            DataType::WLongVarchar { .. }
        ));
        assert!(matches!(
            ty(Value::text("x"), Dialect::Postgres),
            DataType::Varchar { .. }
        ));
        assert_eq!(
            ty(Value::Time(None), Dialect::SqlServer),
            DataType::Timestamp { precision: 6 }
        );
        assert!(matches!(
            ty(Value::Time(None), Dialect::Sqlite),
            DataType::Varchar { .. }
        ));
    }
}
