//! volley-loadtest: a mio-based WebSocket load generator (connect, echo, broadcast, idle) for
//! loopback targets. See loadtest/README.md.

mod chaos;
mod cli;
mod coord;
mod engine;
mod hist;
mod payload;
mod plot;
mod procstat;
mod report;
mod table;
mod target;
mod values;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use cli::{Command, PlotOptions, USAGE};
use report::Report;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("chaos") {
        return ExitCode::from(chaos::main(&argv[1..]));
    }
    let cmd = match cli::parse_args(argv.iter().cloned()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("volley-loadtest: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match cmd {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Plot(p) => match plot_files(&p) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("volley-loadtest plot: {e}");
                ExitCode::from(2)
            }
        },
        Command::Table(baseline, inputs) => match read_reports(&inputs) {
            Ok(reports) => {
                print!("{}", table::render(&reports, &baseline));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("volley-loadtest table: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run(opts) => {
            let opts = Arc::new(*opts);
            if let Some((i, n)) = opts.child {
                return ExitCode::from(coord::run_child(opts, i, n) as u8);
            }
            match coord::run(opts.clone(), &argv) {
                Ok(report) => finish(&opts, &report),
                Err(e) => {
                    eprintln!("volley-loadtest: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Print the summary, write the JSON and the plot; exit 1 if anything failed or got lost.
fn finish(opts: &cli::Options, report: &Report) -> ExitCode {
    print!("{}", report.summary());
    let mut ok = true;
    if let Some(path) = &opts.json {
        match serde_json::to_string_pretty(report) {
            Ok(s) => ok &= write(path, &s),
            Err(e) => {
                eprintln!("volley-loadtest: encoding the report: {e}");
                ok = false;
            }
        }
    }
    if let Some(path) = &opts.plot {
        let (metric, hist) = report.main_hist(None);
        let title = format!("{} {} — {}", report.scenario, metric, report.label);
        ok &= write(
            path,
            &plot::render(&title, metric, &[(report.label.clone(), hist)]),
        );
    }
    if !ok {
        return ExitCode::from(2);
    }
    if report.failures() > 0 || report.tally.counters.established == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn write(path: &Path, text: &str) -> bool {
    match std::fs::write(path, text) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("volley-loadtest: writing {}: {e}", path.display());
            false
        }
    }
}

fn read_reports(paths: &[std::path::PathBuf]) -> Result<Vec<Report>, String> {
    let mut reports = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let r: Report =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        reports.push(r);
    }
    Ok(reports)
}

/// `plot`: overlay saved reports.
fn plot_files(p: &PlotOptions) -> Result<(), String> {
    let reports = read_reports(&p.inputs)?;
    let metric = p.metric.as_deref();
    let name = reports[0].main_hist(metric).0;
    let series: Vec<(String, &hist::Hist)> = reports
        .iter()
        .map(|r| (r.label.clone(), r.main_hist(metric).1))
        .collect();
    let title = p
        .title
        .clone()
        .unwrap_or_else(|| format!("{} {}", reports[0].scenario, name));
    std::fs::write(&p.out, plot::render(&title, name, &series))
        .map_err(|e| format!("{}: {e}", p.out.display()))
}
