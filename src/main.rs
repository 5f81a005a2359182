//! The `pbiops` binary: a thin shell around [`pbiops::run`].

fn main() {
    pbiops::redact::install_panic_hook();
    let vars = match pbiops::environment(std::env::vars_os()) {
        Ok(vars) => vars,
        Err(name) => {
            // Never the value: it may be a secret (a client secret, an ODBC password).
            eprintln!(
                "pbiops: invalid setting: `{name}`: its value is not valid UTF-8\nhelp: set {name} to UTF-8 text; nothing was sent"
            );
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let code = match runtime {
        Ok(rt) => rt.block_on(pbiops::run(std::env::args_os().collect(), vars)),
        Err(e) => {
            eprintln!("pbiops: cannot start the async runtime: {e}");
            1
        }
    };
    // Exit at once: a stdin reader thread may still be blocked on a pipe nobody closes.
    std::process::exit(code);
}
