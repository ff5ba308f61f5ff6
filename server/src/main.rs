//! `telehealth`: serve the platform, apply migrations, or run the demo network.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use telehealth::config::{DatabaseUrl, LogFormat, Overrides, Settings};
use telehealth::demo::seed::{self, DemoSize};
use telehealth::startup::{self, Application};
use telehealth::telemetry;

/// Telehealth consultation platform: scheduling, video rooms, waiting room and clinical notes.
///
/// Settings come from defaults, then the --config file (TOML), then environment variables
/// (TELEHEALTH_*, DATABASE_URL, RUST_LOG), then these flags.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML configuration file [env: TELEHEALTH_CONFIG]
    #[arg(long, global = true, env = "TELEHEALTH_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, global = true)]
    listen: Option<std::net::SocketAddr>,
    /// Directory of the embedded database [default: ./data]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://<data-dir>/telehealth.db]
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and web client (migrations are applied first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Seed the demo network (once; running again adds nothing) and serve it.
    Demo {
        /// Number of care centres in the demo network.
        #[arg(long, default_value_t = 1000)]
        care_centres: usize,
        /// Patients registered at each care centre.
        #[arg(long, default_value_t = 3)]
        patients_per_centre: usize,
        /// Seed only; do not serve.
        #[arg(long)]
        seed_only: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match cli.log_format.as_deref() {
        None => None,
        Some("text") => Some(LogFormat::Text),
        Some("json") => Some(LogFormat::Json),
        Some(other) => {
            eprintln!("error: --log-format must be text or json, not {other:?}");
            return ExitCode::from(2);
        }
    };
    let overrides = Overrides {
        listen: cli.listen,
        data_dir: cli.data_dir,
        database_url: cli.database_url.map(DatabaseUrl::new),
        log_format,
    };
    let settings = match Settings::load(cli.config.as_deref(), overrides) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(settings.log_format, &settings.log_filter);
    match run(cli.command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    tracing::info!(database = %settings.database_url().redacted(), "opening database");
    let db = startup::open_database(&settings).await?;
    match command {
        Command::Migrate => {
            println!(
                "migrations applied to {}",
                settings.database_url().redacted()
            );
            db.close().await;
            Ok(())
        }
        Command::Serve => {
            let app = Application::with_db(&settings, db).await?;
            tracing::info!(address = %app.local_addr(), "serving");
            app.run_until_stopped(startup::shutdown_signal()).await;
            Ok(())
        }
        Command::Demo {
            care_centres,
            patients_per_centre,
            seed_only,
        } => {
            let size = DemoSize {
                care_centres,
                patients_per_centre,
            };
            let summary = seed::seed(&db, size, true).await?;
            if seed_only {
                print_summary(&summary, None);
                db.close().await;
                return Ok(());
            }
            let app = Application::with_db(&settings, db).await?;
            print_summary(&summary, Some(app.local_addr()));
            app.run_until_stopped(startup::shutdown_signal()).await;
            Ok(())
        }
    }
}

fn print_summary(s: &seed::DemoSummary, addr: Option<std::net::SocketAddr>) {
    let state = if s.created {
        "seeded"
    } else {
        "already present, reused"
    };
    println!();
    println!("Demo network {state}:");
    println!(
        "  {} facilities, {} clinicians, {} patients; {} consultations booked on {}",
        s.facilities, s.clinicians, s.patients, s.consultations_on_demo_day, s.demo_day
    );
    let Some(addr) = addr else { return };
    let base = format!("http://{addr}");
    println!();
    println!("Serving on {base}  (Ctrl-C to stop)");
    println!();
    println!("Try:");
    println!("  {base}/                                  the web client (placeholder for now)");
    println!("  {base}/api/v1/openapi.json               the whole API");
    println!("  {base}/api/v1/facilities?kind=hub_hospital");
    if let Some((id, name)) = &s.example_hub {
        println!(
            "  {base}/api/v1/facilities/{id}/calendar?date={}   the day list at {name}",
            s.demo_day
        );
        println!("  {base}/api/v1/facilities/{id}/utilisation");
    }
    if let Some((id, name, specialty)) = &s.example_specialist {
        println!(
            "  {base}/api/v1/slots?specialty={specialty}      free {specialty} slots this week"
        );
        println!("  {base}/api/v1/clinicians/{id}                  {name}");
    }
    println!("  {base}/healthz   {base}/readyz   {base}/metrics");
}
