//! The operation store over ODBC: token store, operation log, schema migrations, SQL dialects.
