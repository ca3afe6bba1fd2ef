//! `sluice check`: talks to the cluster as kubectl does and says, check by check, whether
//! the mesh is installed and working, with the fix for each problem.

mod checks;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::discovery::watch::client_config;

/// Check the mesh in a cluster: API server, CRDs, control plane, webhook configuration,
/// namespaces and pods, proxies in sync, rejected resources. Prints one verdict per check
/// with the fix; exits 0 when all is well, 1 otherwise.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kubeconfig file (else KUBECONFIG or ~/.kube/config, else the in-cluster service account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the control plane.
    #[arg(long, default_value = "sluice-system")]
    namespace: String,
    /// Name of the control plane's Deployment, Service, TLS Secret (NAME-tls) and
    /// webhook configuration.
    #[arg(long, default_value = "sluice-control")]
    name: String,
}

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// All is well.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Broken: the mesh does not work as installed.
    Fail,
}

/// One check's outcome: what was checked, what was found, and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The verdict.
    pub verdict: Verdict,
    /// What was checked, e.g. `control plane`.
    pub check: &'static str,
    /// What was found.
    pub found: String,
    /// What to do about it, for warnings and failures.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, found: impl Into<String>) -> Finding {
        Finding {
            verdict: Verdict::Ok,
            check,
            found: found.into(),
            fix: None,
        }
    }

    fn warn(check: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            verdict: Verdict::Warn,
            check,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(check: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            verdict: Verdict::Fail,
            check,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs `sluice check`.
pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sluice check: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let findings = runtime.block_on(async {
        match client_config(args.kubeconfig.as_deref()).await {
            Ok(config) => checks::all(config, &args.namespace, &args.name).await,
            Err(e) => vec![Finding::fail(
                "API server",
                e.to_string(),
                "point --kubeconfig or KUBECONFIG at the cluster's kubeconfig",
            )],
        }
    });
    for finding in &findings {
        println!("{}", line(finding));
    }
    let failed = findings.iter().any(|f| f.verdict == Verdict::Fail);
    println!(
        "{}",
        if failed {
            "sluice check: problems found"
        } else {
            "sluice check: all is well"
        }
    );
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `ok|warn|FAIL  check: found` and, indented below, the fix.
fn line(finding: &Finding) -> String {
    let mark = match finding.verdict {
        Verdict::Ok => "ok  ",
        Verdict::Warn => "warn",
        Verdict::Fail => "FAIL",
    };
    let mut text = format!("{mark}  {}: {}", finding.check, finding.found);
    if let Some(fix) = &finding.fix {
        text.push_str("\n      fix: ");
        text.push_str(fix);
    }
    text
}
