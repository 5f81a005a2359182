//! The `pbiops` binary: a thin shell around [`pbiops::run`].

fn main() {
    pbiops::redact::install_panic_hook();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let code = match runtime {
        Ok(rt) => rt.block_on(pbiops::run(
            std::env::args_os().collect(),
            std::env::vars().collect(),
        )),
        Err(e) => {
            eprintln!("pbiops: cannot start the async runtime: {e}");
            1
        }
    };
    // Exit at once: a stdin reader thread may still be blocked on a pipe nobody closes.
    std::process::exit(code);
}
