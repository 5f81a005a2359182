//! A deliberately small HTTP/1.1 client over a raw socket (one request per connection), so the
//! tests check exactly what goes over the wire and need no HTTP client dependency.

use pbiops_emulator::{Emulator, Scenario};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const POWERBI_SCOPE: &str = "https://analysis.windows.net/powerbi/api/.default";
pub const FABRIC_SCOPE: &str = "https://api.fabric.microsoft.com/.default";
pub const TENANT: &str = "contoso.onmicrosoft.com";

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// `error.code` of a Power BI error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A running emulator plus helpers that know the demo scenario.
pub struct Emu {
    pub emulator: Emulator,
    pub scenario: Scenario,
}

impl Emu {
    pub async fn demo() -> Emu {
        Emu::with(Scenario::demo()).await
    }

    pub async fn with(scenario: Scenario) -> Emu {
        let emulator = pbiops_emulator::spawn(scenario.clone(), "127.0.0.1:0")
            .await
            .unwrap();
        Emu { emulator, scenario }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        self.send_with(method, path, &headers, body).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, None).await
    }

    /// A GET with extra request headers (`name: value` lines).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send_with("GET", path, headers, None).await
    }

    /// Any request with extra headers and an optional (content type, body).
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Reply {
        let addr = self.emulator.addr();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = match body {
            Some((content_type, text)) => {
                head.push_str(&format!("Content-Type: {content_type}\r\n"));
                text
            }
            None => String::new(),
        };
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        parse(&raw)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let body = body.map(|b| ("application/json", b.to_string()));
        self.send("POST", path, token, body).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(
            "PUT",
            path,
            None,
            Some(("application/json", body.to_string())),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("DELETE", path, token, None).await
    }

    /// A token request with the given form fields.
    pub async fn token_request(&self, tenant: &str, fields: &[(&str, &str)]) -> Reply {
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let path = format!("/{tenant}/oauth2/v2.0/token");
        self.send(
            "POST",
            &path,
            None,
            Some(("application/x-www-form-urlencoded", form)),
        )
        .await
    }

    /// A client of the demo tenant by display name: (client id, secret, secret id).
    pub fn client(&self, display_name: &str) -> (String, String, String) {
        let client = self.scenario.tenants[0]
            .clients
            .iter()
            .find(|c| c.display_name.as_deref() == Some(display_name))
            .unwrap();
        let secret_id = client.secret_id.clone().unwrap_or_default();
        let secret = client.secret.clone().unwrap_or_default();
        (client.client_id.clone(), secret, secret_id)
    }

    /// A live token of a demo client for `scope`.
    pub async fn token_of(&self, display_name: &str, scope: &str) -> String {
        let (id, secret, _) = self.client(display_name);
        let reply = self
            .token_request(
                TENANT,
                &[
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("scope", scope),
                    ("grant_type", "client_credentials"),
                ],
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// A Power BI token of the demo client.
    pub async fn token(&self) -> String {
        self.token_of("pbiops-demo", POWERBI_SCOPE).await
    }

    /// `/v1.0/myorg/groups/{g}/datasets/{d}` of a model by workspace and model name.
    pub fn model(&self, workspace: &str, model: &str) -> String {
        let ws = self
            .scenario
            .workspaces
            .iter()
            .find(|w| w.name == workspace)
            .unwrap();
        let ds = ws.datasets.iter().find(|d| d.name == model).unwrap();
        format!("/v1.0/myorg/groups/{}/datasets/{}", ws.id, ds.id)
    }

    pub fn dataset_id(&self, workspace: &str, model: &str) -> String {
        self.model(workspace, model)
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    }

    /// Sets a model's refresh behaviour through the control API.
    pub async fn behave(&self, workspace: &str, model: &str, behaviour: Value) {
        let path = format!(
            "/_emulator/datasets/{}/refresh",
            self.dataset_id(workspace, model)
        );
        let reply = self.put(&path, behaviour).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    /// The history of a model (one observation of each listed refresh).
    pub async fn history(&self, model_path: &str, token: &str) -> Vec<Value> {
        let reply = self
            .get(&format!("{model_path}/refreshes"), Some(token))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["value"].as_array().unwrap().clone()
    }
}

/// The entry of `history` with this request id.
pub fn entry<'a>(history: &'a [Value], request_id: &str) -> Option<&'a Value> {
    history.iter().find(|e| e["requestId"] == request_id)
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 4 + size..];
    }
}

/// What came over a socket for one request, however the connection ended.
#[derive(Debug)]
pub struct Raw {
    /// The status line and headers (empty if none arrived).
    pub head: String,
    /// The body bytes received.
    pub body: Vec<u8>,
    /// Whether the connection ended in an error (reset) rather than a clean close.
    pub reset: bool,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    pub fn status(&self) -> u16 {
        self.head.split(' ').nth(1).unwrap().parse().unwrap()
    }
}

impl Emu {
    /// One request, reading whatever arrives until the connection ends (cleanly or not).
    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>) -> Raw {
        let addr = self.emulator.addr();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let body = if method == "POST" { "{}" } else { "" };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let reset = loop {
            match stream.read(&mut buf).await {
                Ok(0) => break false,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(_) => break true,
            }
        };
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(raw.len());
        Raw {
            head: String::from_utf8_lossy(&raw[..split]).into_owned(),
            body: raw.get(split + 4..).unwrap_or_default().to_vec(),
            reset,
        }
    }

    /// Adds a fault through the control API.
    pub async fn fault(&self, fault: Value) {
        let reply = self.post("/_emulator/faults", None, Some(fault)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    /// Moves the emulator's clock forward.
    pub async fn advance(&self, seconds: f64) {
        let reply = self
            .post(
                "/_emulator/clock/advance",
                None,
                Some(serde_json::json!({ "seconds": seconds })),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}
