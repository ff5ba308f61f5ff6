//! `telehealth`: serve the platform, apply migrations, run the demo network, or check the record.

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
    /// Check that every consultation's slot claims agree with its status, across the whole
    /// database: name each one that does not (exit 1 if any).
    Check,
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Signed encounter notes.
    Notes {
        #[command(subcommand)]
        command: NotesCommand,
    },
    /// Accounts (for the first administrator; afterwards use the API).
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain of the audit trail, then the trail against the signed checkpoint log
    /// (truncation, rewriting, a missing log, bad signatures): exit 1 on any finding. Prints the
    /// checkpoint public key, to pin elsewhere.
    Verify {
        /// Verify the checkpoints against this public key (base64, as printed) instead of the
        /// one derived from the key file: a key pinned off the machine cannot have been swapped.
        #[arg(long)]
        public_key: Option<String>,
    },
}

#[derive(Subcommand)]
enum NotesCommand {
    /// Check every signed note entry (hash, signature, signer's published key, what the document
    /// names) and name each one that fails (exit 1 if any). Reads the notes_kek_file.
    Verify,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account. The password is read from TELEHEALTH_NEW_PASSWORD, never from a flag.
    /// Applied at once, without a second administrator: this is how the first administrators are
    /// made, by whoever holds the server's shell (the API makes links and privileged roles wait).
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: String,
        /// patient, clinician, scheduler or administrator (repeatable)
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The hospital of a scheduler role (omit for the whole network)
        #[arg(long)]
        facility_id: Option<i64>,
        /// The clinician this account is
        #[arg(long)]
        clinician_id: Option<i64>,
        /// The patient this account is
        #[arg(long)]
        patient_id: Option<i64>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // Before anything is written: every file this process makes is its user's only.
    startup::restrict_new_files();
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
        Command::Audit {
            command: AuditCommand::Verify { public_key },
        } => {
            use telehealth::audit::checkpoint;
            let cs = checkpoint::CheckpointSettings::from_settings(&settings);
            let key = match public_key {
                Some(text) => checkpoint::parse_public_key(&text)
                    .ok_or("--public-key is not a base64 Ed25519 public key")?,
                None => checkpoint::public_key_from_file(&cs.key_file).map_err(|e| {
                    format!("{e} (a server creates it on first start; or pass --public-key)")
                })?,
            };
            let report = checkpoint::verify_trail(&db, &cs.log_file, &key).await;
            db.close().await;
            let report = report?;
            for line in report.lines() {
                println!("{line}");
            }
            if report.is_intact() {
                Ok(())
            } else {
                Err("the audit trail failed verification (see above)".into())
            }
        }
        Command::Notes {
            command: NotesCommand::Verify,
        } => {
            // Read only: a missing KEK file is reported, never made here.
            let (kek, _) = startup::notes_kek(&settings, false)?;
            let signatures = telehealth::notes::Signatures {
                kek,
                passkeys: telehealth::notes::passkeys::RelyingParty::new(
                    settings.public_url.as_deref(),
                )?,
            };
            let summary = telehealth::notes::verify_all(&db, &signatures, 500, |e| {
                println!(
                    "entry {} (consultation {}, seq {}, signer clinician {}) FAILED: {}",
                    e.id,
                    e.consultation_id.0,
                    e.seq,
                    e.signer_clinician_id.0,
                    e.verification_failure.unwrap_or("")
                )
            })
            .await?;
            db.close().await;
            if summary.failures == 0 {
                println!("signed notes intact: {} entries verified", summary.entries);
                Ok(())
            } else {
                println!(
                    "{} of {} signed note entries failed verification",
                    summary.failures, summary.entries
                );
                Err(format!(
                    "{} signed note entries failed verification",
                    summary.failures
                )
                .into())
            }
        }
        Command::Check => {
            use telehealth::scheduling::consistency;
            let summary = consistency::check(&db, consistency::PAGE, |f| println!("{f}")).await?;
            db.close().await;
            if summary.findings == 0 {
                println!(
                    "claims agree with every consultation: {} consultations and {} claimed cells checked",
                    summary.consultations, summary.claims
                );
                Ok(())
            } else {
                println!(
                    "{} disagreements between consultations and their claims ({} consultations, {} claimed cells checked)",
                    summary.findings, summary.consultations, summary.claims
                );
                Err(format!(
                    "{} consultations' claims disagree with their state",
                    summary.findings
                )
                .into())
            }
        }
        Command::Account {
            command:
                AccountCommand::Create {
                    username,
                    display_name,
                    roles,
                    facility_id,
                    clinician_id,
                    patient_id,
                },
        } => {
            use telehealth::auth::{Grant, Role, accounts, password};
            let username = accounts::normalise_username(&username)
                .ok_or("the user name must be 3 to 64 letters, digits or . _ - @")?;
            let display_name =
                telehealth::domain::text::BoundedText::parse(&display_name, 200, false)
                    .map_err(|e| format!("the display name {e}"))?
                    .into_string();
            let password = std::env::var("TELEHEALTH_NEW_PASSWORD")
                .map_err(|_| "set TELEHEALTH_NEW_PASSWORD to the new account's password")?;
            let password_hash = password::hash_new(&password, &[&username, &display_name])?;
            let mut grants = Vec::new();
            for r in &roles {
                let role = Role::parse(r).ok_or_else(|| format!("unknown role {r:?}"))?;
                let facility_id = (role == Role::Scheduler)
                    .then_some(facility_id)
                    .flatten()
                    .map(telehealth::domain::ids::FacilityId);
                grants.push(Grant { role, facility_id });
            }
            let view = accounts::create_account(
                &db,
                accounts::NewAccount {
                    username,
                    display_name,
                    password_hash: Some(password_hash),
                    patient_id: patient_id.map(telehealth::domain::ids::PatientId),
                    clinician_id: clinician_id.map(telehealth::domain::ids::ClinicianId),
                    grants,
                },
            )
            .await?;
            println!(
                "account {} created (id {})",
                view.account.username, view.account.id
            );
            db.close().await;
            Ok(())
        }
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
            let stop = startup::shutdown_signal();
            tracing::info!(address = %app.local_addr(), url = %app.base_url(), "serving");
            app.run_until_stopped(stop).await;
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
            let on_call = seed::on_call_now(&db).await?;
            // Metrics are never public; unless configured otherwise, the demo makes a token for
            // this run and prints how to use it.
            let mut settings = settings.clone();
            let made_token =
                if settings.metrics_token.is_none() && settings.metrics_listen.is_none() {
                    let (token, _) = telehealth::auth::tokens::new_session_token()?;
                    settings.metrics_token = Some(telehealth::config::Secret::new(token.clone()));
                    Some(token)
                } else {
                    None
                };
            let app = Application::with_db(&settings, db).await?;
            let stop = startup::shutdown_signal();
            print_summary(&summary, Some(app.base_url()));
            let insecure = if app.is_tls() { "-k " } else { "" };
            match (made_token, app.metrics_addr()) {
                (Some(token), _) => println!(
                    "\nMetrics (token made for this run): curl {insecure}-H 'Authorization: Bearer {token}' {}/metrics",
                    app.base_url()
                ),
                (None, Some(addr)) => println!("\nMetrics: http://{addr}/metrics"),
                (None, None) => println!(
                    "\nMetrics: {}/metrics with 'Authorization: Bearer <metrics_token>'",
                    app.base_url()
                ),
            }
            if let Some(c) = on_call {
                println!();
                println!(
                    "bacsi is on call {} {}–{} ({}); their first free slot: {}.",
                    c.date,
                    c.start.format("%H:%M"),
                    c.end.format("%H:%M"),
                    c.zone,
                    c.first_free
                        .map(|t| t.format("%H:%M").to_string())
                        .unwrap_or_else(|| "none left today".into())
                );
                println!(
                    "Sign in as tramyte and book it with bacsi for benhnhan; then join the call as bacsi"
                );
                println!(
                    "and as benhnhan (it opens 15 minutes before the slot; dieuphoi can free earlier ones)."
                );
            }
            app.run_until_stopped(stop).await;
            Ok(())
        }
    }
}

fn print_summary(s: &seed::DemoSummary, base: Option<String>) {
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
    let Some(base) = base else { return };
    println!();
    println!("Serving on {base}  (Ctrl-C to stop)");
    println!();
    println!("Try (API calls need a session: sign in as shown below):");
    println!("  {base}/                                  the web client (sign in as below)");
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
    println!("  {base}/healthz   {base}/readyz");
    if !s.accounts.is_empty() {
        println!();
        println!(
            "Demo sign-ins (password \"{}\" for all):",
            seed::DEMO_PASSWORD
        );
        for (user, role, who) in &s.accounts {
            println!("  {user:<10} {role:<14} {who}");
        }
        println!(
            "  e.g. curl -X POST {base}/api/v1/auth/login -H 'content-type: application/json' \\\n         -d '{{\"username\":\"dieuphoi\",\"password\":\"{}\"}}'",
            seed::DEMO_PASSWORD
        );
        println!("  then send the returned token as 'Authorization: Bearer <token>'.");
    }
}
