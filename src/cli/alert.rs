//! `credtrail alert ...`: tools for whoever consumes alerts. `verify` checks the signatures of
//! a replay's signed file or a dump of the alert topic.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use credtrail::alert::signature::{SigningKeys, verify_lines};

#[derive(Args)]
pub struct AlertArgs {
    #[command(subcommand)]
    command: AlertCommand,
}

#[derive(Subcommand)]
enum AlertCommand {
    /// Check every alert's signature: JSON lines of `{"key", "payload", "headers"}`, as
    /// `replay --signed-out` writes them and `kcat -C -J -t <alert topic>` dumps the topic.
    /// Exit 0 if every line verifies, 1 if any does not (each named with its line), 2 on bad
    /// arguments or an unreadable file.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    /// Signed files or topic dumps; `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The key file (`<key id> <base64 secret>` per line); every key in it verifies.
    #[arg(long)]
    keys: PathBuf,
}

pub fn run(args: AlertArgs) -> ExitCode {
    match args.command {
        AlertCommand::Verify(a) => verify(a),
    }
}

fn verify(args: VerifyArgs) -> ExitCode {
    let keys = match SigningKeys::load(&args.keys) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("credtrail: error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut all_ok = true;
    for path in &args.files {
        let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            match std::fs::File::open(path) {
                Ok(f) => Box::new(BufReader::new(f)),
                Err(e) => {
                    eprintln!("credtrail: error: cannot read {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        };
        let verdict = match verify_lines(&keys, input) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("credtrail: error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let name = path.display();
        for (line, why) in &verdict.failures {
            println!("{name}:{line}: {why}");
        }
        if verdict.failed as usize > verdict.failures.len() {
            println!(
                "{name}: ... and {} more",
                verdict.failed as usize - verdict.failures.len()
            );
        }
        let by_key: Vec<String> = verdict
            .verified
            .iter()
            .map(|(k, n)| format!("{n} by key {k}"))
            .collect();
        let verified: u64 = verdict.verified.values().sum();
        if verdict.failed == 0 && verified == 0 {
            all_ok = false;
            println!("{name}: FAILED, no signed alert in it");
        } else if verdict.ok() {
            println!(
                "{name}: {verified} alert(s) verified ({})",
                by_key.join(", ")
            );
        } else {
            all_ok = false;
            println!(
                "{name}: {} alert(s) FAILED, {verified} verified{}",
                verdict.failed,
                if by_key.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", by_key.join(", "))
                }
            );
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
