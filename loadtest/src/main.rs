//! mtqp-load: the load driver and synthetic log generator for mtqpd. Its commands arrive with
//! the load-driver issue; until then it only says so.

fn main() -> std::process::ExitCode {
    eprintln!("mtqp-load: not built yet (see the load-driver issue); use the benches meanwhile");
    std::process::ExitCode::FAILURE
}
