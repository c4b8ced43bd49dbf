use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    drswitch::cli::main().await
}
