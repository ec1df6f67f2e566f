//! Output formats shared by the commands: tables for people, JSON and YAML for programs.

use serde::Serialize;
use tabled::settings::Style;
use tabled::{Table, Tabled};

/// `-o/--output` of list and get commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table (lists) or a card (single objects).
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Prints a value as JSON or YAML; returns false for the table format (the caller prints it).
pub fn print_structured<T: Serialize>(format: Format, value: &T) -> anyhow::Result<bool> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_yaml::to_string(value)?),
        Format::Table => return Ok(false),
    }
    Ok(true)
}

/// Wraps objects in a `v1 List`, as kubectl does for `-o json|yaml` on lists.
pub fn list_of<T: Serialize>(items: &[T]) -> serde_json::Value {
    serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items })
}

/// Prints rows as a borderless table in kubectl's style, or a "No … found" line.
pub fn print_table<R: Tabled>(rows: Vec<R>, empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
        return;
    }
    let mut table = Table::new(rows);
    table.with(Style::blank());
    println!("{table}");
}

/// Prints `label: value` lines with the values aligned.
pub fn print_card(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value) in fields {
        println!("{:<width$} {value}", format!("{key}:"));
    }
}

/// Progress of long work on stderr: a spinner with the current step on a terminal, plain lines
/// otherwise (logs, CI, Jobs).
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn new() -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Progress { bar }
    }

    /// Reports a step.
    pub fn step(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(line.to_string()),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// Writes one line to stderr in a single write: where stdout and stderr end up in one log (a
/// Job's), no stdout line can land inside it.
pub fn line_to_stderr(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(format!("{line}\n").as_bytes());
}
