//! The token store: one current token per (profile, resource), and the legacy token table.
//!
//! Other jobs read tokens from here, and several runners may renew the same token at once, so
//! a write is one atomic upsert that keeps whichever token expires last (see
//! [`Dialect::upsert_token`](super::Dialect)). The token column holds the token encrypted
//! (`aes256gcm-v1`) when a key is configured, as it is (`plain`) otherwise; nothing else about a
//! token is secret, and no message ever includes it.

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::crypto::{self, AES256GCM_V1, PLAIN};
use super::dialect::Cond;
use super::schema::TOKENS;
use super::values::Value;
use super::{Store, bounded, now};
use crate::error::Error;

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The profile it was acquired for.
    pub profile: String,
    /// The resource it is for (`powerbi`, `fabric`, `flow`).
    pub resource: String,
    /// The profile's tenant (empty for a managed identity).
    pub tenant_id: String,
    /// The profile's client id (empty for a system-assigned managed identity).
    pub client_id: String,
    /// The access token.
    pub access_token: SecretString,
    /// When it expires.
    pub expires_at: Timestamp,
    /// When it was acquired.
    pub acquired_at: Timestamp,
}

/// A stored token, decrypted.
#[derive(Debug, Clone)]
pub struct StoredToken {
    /// The profile.
    pub profile: String,
    /// The resource.
    pub resource: String,
    /// The tenant it was acquired in.
    pub tenant_id: String,
    /// The client id it was acquired with.
    pub client_id: String,
    /// The access token.
    pub access_token: SecretString,
    /// When it expires (to the microsecond).
    pub expires_at: Timestamp,
    /// When it was acquired.
    pub acquired_at: Timestamp,
}

/// What the store knows about a token, without the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// The profile.
    pub profile: String,
    /// The resource.
    pub resource: String,
    /// The tenant.
    pub tenant_id: String,
    /// The client id.
    pub client_id: String,
    /// `plain` or `aes256gcm-v1`.
    pub token_format: String,
    /// When it expires.
    pub expires_at: Timestamp,
    /// When it was acquired.
    pub acquired_at: Timestamp,
    /// When the row was last written.
    pub updated_at: Timestamp,
}

const COLUMNS: [&str; 9] = [
    "profile",
    "resource",
    "tenant_id",
    "client_id",
    "access_token",
    "token_format",
    "expires_at",
    "acquired_at",
    "updated_at",
];

impl Store {
    /// The current token of (`profile`, `resource`), decrypted; `None` when there is none.
    pub async fn token(&self, profile: &str, resource: &str) -> Result<Option<StoredToken>, Error> {
        let d = self.dialect();
        let sql = d.select(
            TOKENS.name,
            &[
                "tenant_id",
                "client_id",
                "access_token",
                "token_format",
                "expires_at",
                "acquired_at",
            ],
            &[Cond::Eq("profile"), Cond::Eq("resource")],
            &[],
            false,
        );
        let params = [Value::text(profile), Value::text(resource)];
        let action = format!("read the {resource} token of profile `{profile}`");
        let rows = self
            .call(&action, move |s| {
                s.query(&sql, &params, |c| {
                    Ok((
                        c.text()?.unwrap_or_default(),
                        c.text()?.unwrap_or_default(),
                        SecretString::from(c.required_text()?),
                        c.required_text()?,
                        c.required_time()?,
                        c.required_time()?,
                    ))
                })
            })
            .await?;
        let Some((tenant_id, client_id, stored, format, expires_at, acquired_at)) =
            rows.into_iter().next()
        else {
            return Ok(None);
        };
        let access_token = self.reveal(&action, profile, resource, &format, &stored)?;
        Ok(Some(StoredToken {
            profile: profile.to_string(),
            resource: resource.to_string(),
            tenant_id,
            client_id,
            access_token,
            expires_at,
            acquired_at,
        }))
    }

    fn reveal(
        &self,
        action: &str,
        profile: &str,
        resource: &str,
        format: &str,
        stored: &SecretString,
    ) -> Result<SecretString, Error> {
        let fail = |message: String| {
            Error::Store {
            action: action.to_string(),
            message,
            help: Some(
                "PBIOPS_TOKEN_KEY must be the key the token was written with; or delete the row and let pbiops acquire a new token"
                    .into(),
            ),
        }
        };
        match format {
            PLAIN => Ok(stored.clone()),
            AES256GCM_V1 => {
                let key = self.inner.key.as_ref().ok_or_else(|| {
                    fail("the stored token is encrypted and PBIOPS_TOKEN_KEY is not set".into())
                })?;
                crypto::open(key, profile, resource, stored.expose_secret())
                    .map(SecretString::from)
                    .map_err(fail)
            }
            other => Err(fail(format!(
                "the stored token has the unknown format `{other}` (written by a newer pbiops?)"
            ))),
        }
    }

    /// Stores a token as the current one of its (profile, resource), unless the stored one
    /// expires later: concurrent runners converge on the newest token, and no row is ever half
    /// written.
    pub async fn put_token(&self, t: &NewToken) -> Result<(), Error> {
        let action = format!("store the {} token of profile `{}`", t.resource, t.profile);
        let (format, stored) = match &self.inner.key {
            Some(key) => (
                AES256GCM_V1,
                crypto::seal(key, &t.profile, &t.resource, t.access_token.expose_secret())
                    .map_err(|message| Error::Store {
                        action: action.clone(),
                        message,
                        help: None,
                    })?,
            ),
            None => (PLAIN, t.access_token.expose_secret().to_string()),
        };
        let secrets = [t.access_token.expose_secret(), stored.as_str()];
        let params = vec![
            bounded(&TOKENS, "profile", Some(&t.profile)),
            bounded(&TOKENS, "resource", Some(&t.resource)),
            bounded(&TOKENS, "tenant_id", Some(&t.tenant_id)),
            bounded(&TOKENS, "client_id", Some(&t.client_id)),
            Value::Text(Some(stored.clone())),
            Value::text(format),
            Value::Time(Some(t.expires_at)),
            Value::Time(Some(t.acquired_at)),
            Value::Time(Some(now())),
        ];
        let sql = self.dialect().upsert_token(&COLUMNS);
        self.call_binding_secrets(&action, &secrets, move |s| s.execute(&sql, &params))
            .await
    }

    /// Every stored token's metadata (never the token), by profile and resource.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        let sql = self.dialect().select(
            TOKENS.name,
            &[
                "profile",
                "resource",
                "tenant_id",
                "client_id",
                "token_format",
                "expires_at",
                "acquired_at",
                "updated_at",
            ],
            &[],
            &[("profile", false), ("resource", false)],
            false,
        );
        self.call("list the stored tokens", move |s| {
            s.query(&sql, &[], |c| {
                Ok(TokenInfo {
                    profile: c.required_text()?,
                    resource: c.required_text()?,
                    tenant_id: c.text()?.unwrap_or_default(),
                    client_id: c.text()?.unwrap_or_default(),
                    token_format: c.required_text()?,
                    expires_at: c.required_time()?,
                    acquired_at: c.required_time()?,
                    updated_at: c.required_time()?,
                })
            })
        })
        .await
    }

    /// Appends a token to a legacy table the way its readers expect: columns `bearerToken`,
    /// `dateRetrieved`, `expiresOn` (UTC, to the millisecond) and `token_type`. A token longer
    /// than `max_len` (the `bearerToken` column's size) is refused rather than cut.
    pub async fn append_legacy_token(
        &self,
        table: &str,
        token: &SecretString,
        retrieved_at: Timestamp,
        expires_on: Timestamp,
        token_type: &str,
        max_len: usize,
    ) -> Result<(), Error> {
        let action = format!("append the {token_type} token to the legacy table {table}");
        let sql = self
            .dialect()
            .legacy_insert(table)
            .map_err(|message| Error::Store {
                action: action.clone(),
                message,
                help: Some(
                    "set PBIOPS_LEGACY_TOKEN_TABLE to the table, e.g. log.BearerTokens".into(),
                ),
            })?;
        let length = token.expose_secret().encode_utf16().count();
        if length > max_len {
            return Err(Error::Store {
                action,
                message: format!(
                    "the token is {length} characters long, but the table's bearerToken column holds at most {max_len}; it was not written, because a cut token does not work"
                ),
                help: Some(format!(
                    "widen the column (ALTER TABLE {table} ALTER COLUMN bearerToken NVARCHAR(MAX)) and set PBIOPS_LEGACY_TOKEN_MAX_LENGTH to its new size"
                )),
            });
        }
        let millis = |t: Timestamp| Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t);
        let params = vec![
            Value::Text(Some(token.expose_secret().to_string())),
            Value::Time(Some(millis(retrieved_at))),
            Value::Time(Some(millis(expires_on))),
            Value::text(token_type),
        ];
        let secrets = [token.expose_secret()];
        self.call_binding_secrets(&action, &secrets, move |s| s.execute(&sql, &params))
            .await
    }
}
