//! `pbiops-emulator`: runs the emulator by hand, for developing flows offline.
//!
//! Thin on purpose: parse arguments, load the scenario, bind, print the one line other programs
//! wait for (`listening on http://HOST:PORT`), serve until Ctrl-C or SIGTERM.

use clap::Parser;
use pbiops_emulator::Scenario;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// A local emulator of Entra ID, Power BI, Fabric and Power Automate HTTP APIs.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Scenario file (JSON); without it, the bundled demo scenario.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5480")]
    listen: String,
    /// Serve HTTPS with a CA generated for this run, written (PEM) to FILE: give it to pbiops as
    /// PBIOPS_CA_FILE. The certificate covers localhost, 127.0.0.1, ::1 and every --tls-name.
    #[arg(long, value_name = "FILE")]
    tls: Option<PathBuf>,
    /// Another host name (or address) the TLS certificate covers, e.g. a name a proxy maps here.
    #[arg(long, value_name = "NAME", requires = "tls")]
    tls_name: Vec<String>,
    /// Emulate this cloud: public, usgov, usgovhigh, dod or china. Tokens are issued only for
    /// its scopes and the APIs accept only its audiences (overrides the scenario's `cloud`).
    #[arg(long, value_name = "CLOUD")]
    cloud: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let scenario = match &args.scenario {
        None => Scenario::demo(),
        Some(path) => match std::fs::read_to_string(path) {
            Err(e) => {
                eprintln!("error: cannot read scenario {}: {e}", path.display());
                return ExitCode::from(2);
            }
            Ok(text) => match Scenario::from_json(&text) {
                Ok(scenario) => scenario,
                Err(e) => {
                    eprintln!("error: invalid scenario {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
        },
    };

    let mut scenario = scenario;
    if let Some(name) = &args.cloud {
        match pbiops_emulator::Cloud::parse(name) {
            Some(cloud) => scenario.cloud = cloud,
            None => {
                eprintln!("error: unknown cloud `{name}` (public, usgov, usgovhigh, dod or china)");
                return ExitCode::from(2);
            }
        }
    }
    let tls = match &args.tls {
        None => None,
        Some(path) => {
            let tls = match pbiops_emulator::Tls::generate(&args.tls_name) {
                Ok(tls) => tls,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(e) = std::fs::write(path, tls.ca_pem()) {
                eprintln!("error: cannot write the CA to {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            Some(tls)
        }
    };

    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("error: cannot read the bound address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    // Another program may be waiting for this line: flush it now.
    let scheme = if tls.is_some() { "https" } else { "http" };
    if writeln!(stdout, "listening on {scheme}://{addr}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }

    let served = match tls {
        Some(tls) => {
            let handshakes = std::sync::Arc::default();
            pbiops_emulator::serve_tls(listener, scenario, tls, handshakes, stop_signal()).await
        }
        None => pbiops_emulator::serve(listener, scenario, stop_signal()).await,
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C, or on SIGTERM on Unix.
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
