//! Managed identity tokens: the Instance Metadata Service, or App Service's identity endpoint.
//!
//! Both are plain-HTTP endpoints local to the host. IMDS wants `Metadata: true` and API version
//! 2018-02-01; App Service wants its `X-IDENTITY-HEADER` secret and API version 2019-08-01. Both
//! take the resource URI (no `/.default`), and answer `expires_in` and/or `expires_on` as strings.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{Error, ServiceError};
use crate::http::{Http, Retry};
use crate::settings::ManagedIdentityEndpoint;

#[derive(Deserialize)]
struct MiToken {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
}

fn number(v: &Option<serde_json::Value>) -> Option<i64> {
    match v.as_ref()? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Gets a token for `resource` (the cloud's resource URI) from the managed identity endpoint.
pub async fn token(
    http: &Http,
    endpoint: &ManagedIdentityEndpoint,
    client_id: Option<&str>,
    resource: &str,
    action: &str,
) -> Result<Result<(SecretString, Duration), ServiceError>, Error> {
    let mut query = vec![("resource", resource.to_string())];
    if let Some(id) = client_id {
        query.push(("client_id", id.to_string()));
    }
    let (endpoint_name, response) = match endpoint {
        ManagedIdentityEndpoint::Imds { url } => {
            query.push(("api-version", "2018-02-01".into()));
            let r = http
                .send("token.imds", action, Retry::Idempotent, || {
                    http.client()
                        .get(url)
                        .query(&query)
                        .header("Metadata", "true")
                })
                .await?;
            ("IMDS", r)
        }
        ManagedIdentityEndpoint::AppService { url, header } => {
            query.push(("api-version", "2019-08-01".into()));
            let r = http
                .send("token.appservice", action, Retry::Idempotent, || {
                    http.client()
                        .get(url)
                        .query(&query)
                        .header("X-IDENTITY-HEADER", header.expose_secret())
                })
                .await?;
            ("App Service identity endpoint", r)
        }
    };
    if !response.is_success() {
        let mut service = response.service_error();
        service.message = Some(format!(
            "{endpoint_name}: {}",
            service.message.unwrap_or_default()
        ));
        return Ok(Err(service));
    }
    let body: MiToken = response.json(action)?;
    let lifetime = number(&body.expires_in)
        .or_else(|| number(&body.expires_on).map(|on| on - jiff::Timestamp::now().as_second()))
        .unwrap_or(3600)
        .max(0);
    Ok(Ok((
        body.access_token,
        Duration::from_secs(lifetime as u64),
    )))
}
