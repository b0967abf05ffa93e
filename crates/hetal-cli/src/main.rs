//! `hetal`: the command-line tool of the hetal project.
//!
//! Training (`hetal fit`, `hetal demo`), the two roles on two machines (`hetal keygen`,
//! `encrypt`, `decide`, `decrypt-model` on the client, `hetal train` on the server), prediction
//! (`hetal predict`) and benchmarks (`hetal bench …`).

mod alloc;
mod bench;
mod fit;
mod matmul;
mod roles;
mod session;
mod softmax;
mod step;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hetal",
    version,
    about = "Privacy-preserving transfer learning with homomorphic encryption"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trains a softmax classification head on a HETAL-layout dataset directory.
    Fit(fit::FitArgs),
    /// Predicts classes with a model written by `hetal fit`.
    Predict(fit::PredictArgs),
    /// Trains encrypted on the bundled UCI digits and compares with plaintext training.
    Demo(fit::DemoArgs),
    /// Client: makes the secret key and the server's keys for a dataset (two-machine runs).
    Keygen(roles::KeygenArgs),
    /// Client: encrypts the dataset for the server.
    Encrypt(roles::EncryptArgs),
    /// Server: trains an epoch on the client's files, or applies its decision.
    Train(roles::TrainArgs),
    /// Client: decrypts an epoch's validation outputs and decides whether to stop.
    Decide(roles::DecideArgs),
    /// Client: decrypts the trained model into a `hetal fit` output directory.
    DecryptModel(roles::DecryptModelArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Times the leveled CKKS operations at the top level of a preset.
    Ops(bench::OpsArgs),
    /// Times key generation and bootstrapping at a bootstrappable preset.
    Bootstrap(bench::BootArgs),
    /// Counts (simulated) or times (encrypted) HETAL's matrix products for one shape.
    Matmul(matmul::MatmulArgs),
    /// Measures a softmax's error and depth (simulated, or encrypted at insecure test parameters).
    Softmax(softmax::SoftmaxArgs),
    /// One full training step (forward, softmax, backward, update, bootstraps).
    Step(step::StepArgs),
}

fn main() -> anyhow::Result<()> {
    alloc::keep_freed_pages();
    let cli = Cli::parse();
    match cli.command {
        Command::Fit(args) => fit::fit(&args),
        Command::Predict(args) => fit::predict(&args),
        Command::Demo(args) => fit::demo(&args),
        Command::Keygen(args) => roles::keygen(&args),
        Command::Encrypt(args) => roles::encrypt(&args),
        Command::Train(args) => roles::train(&args),
        Command::Decide(args) => roles::decide(&args),
        Command::DecryptModel(args) => roles::decrypt_model(&args),
        Command::Bench {
            what: BenchCommand::Ops(args),
        } => bench::ops(&args),
        Command::Bench {
            what: BenchCommand::Bootstrap(args),
        } => bench::bootstrap(&args),
        Command::Bench {
            what: BenchCommand::Matmul(args),
        } => matmul::matmul(&args),
        Command::Bench {
            what: BenchCommand::Softmax(args),
        } => softmax::softmax(&args),
        Command::Bench {
            what: BenchCommand::Step(args),
        } => step::step(&args),
    }
}
