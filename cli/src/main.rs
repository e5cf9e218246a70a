//! `upload`: the upload service from a shell, for people (progress bars, short lines) and
//! scripts (`--json`, exit codes). See `upload --help`, and the README's "Command line".

mod api;
mod commands;
mod error;
mod parts;
mod progress;
mod put;
mod state;
mod wire;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::Failure;

const EXIT_CODES: &str = "\
Configuration: --api or UPLOAD_API is the project's base URL (…/v1/projects/PROJECT); \
--key or UPLOAD_KEY an API key, or --token or UPLOAD_TOKEN an upload token (a token may only \
put, and read the files it made). A flag outranks the environment.

Exit status:
  0    done (with --wait: every file verified)
  1    an error: its code and message on stderr (with --json, the contract's error body on stdout)
  2    the command line is wrong
  3    a file was rejected (with --wait, or already known to be)
  130  interrupted (Ctrl-C): run the same command again to resume";

#[derive(Debug, Parser)]
#[command(name = "upload", version, about = "Upload files to the upload service; list, download and delete them", after_help = EXIT_CODES)]
pub struct Cli {
    /// The project's API base URL, e.g. https://api.example.com/v1/projects/p1
    #[arg(long, env = "UPLOAD_API", global = true, value_name = "URL")]
    api: Option<String>,
    /// An API key (upk_…)
    #[arg(
        long,
        env = "UPLOAD_KEY",
        global = true,
        hide_env_values = true,
        value_name = "KEY"
    )]
    key: Option<String>,
    /// An upload token (upt_…), used before a key given the same way (flag or environment)
    #[arg(
        long,
        env = "UPLOAD_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// One JSON object per file (or error) on stdout, for scripts
    #[arg(long, global = true)]
    json: bool,
    /// Which of --key and --token were typed: a flag outranks the environment.
    #[arg(skip)]
    typed: Typed,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upload files (resumable: after Ctrl-C or a crash, the same command goes on where it stopped)
    Put(PutArgs),
    /// List the project's files, newest first
    Ls {
        /// Only files with this status
        #[arg(long, value_parser = ["pending_upload", "uploaded", "verified", "rejected"])]
        status: Option<String>,
        /// At most this many files
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Download a verified file and check its SHA-256
    Get {
        /// The file's id
        id: String,
        /// Where to write it (default: its name, in this directory; `-` for stdout)
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// Delete a file: its content, record and any upload in progress
    Rm {
        /// The file's id
        id: String,
    },
}

/// `upload put`'s arguments.
#[derive(Debug, clap::Args)]
struct PutArgs {
    /// Files to upload
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Metadata for every file, repeatable
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    meta: Vec<(String, String)>,
    /// Content type (default: from a few known extensions, else application/octet-stream)
    #[arg(long = "type", value_name = "TYPE")]
    content_type: Option<String>,
    /// Wait until each file is verified or rejected (exit status 3 when one is rejected)
    #[arg(long)]
    wait: bool,
    /// PUTs in flight at once, across all files
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64), value_name = "N")]
    parallel: u16,
    /// Forget an interrupted upload of these files and start anew
    #[arg(long)]
    restart: bool,
}

impl PutArgs {
    fn options(&self) -> put::Options {
        put::Options {
            metadata: self.meta.iter().cloned().collect(),
            content_type: self.content_type.clone(),
            wait: self.wait,
            parallel: usize::from(self.parallel),
            restart: self.restart,
        }
    }
}

fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Which credentials came on the command line.
#[derive(Debug, Clone, Copy, Default)]
struct Typed {
    key: bool,
    token: bool,
}

impl Cli {
    /// Parses `args`, noting which credentials were typed rather than taken from the
    /// environment.
    fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(args)?;
        let mut cli = Self::from_arg_matches(&matches)?;
        let typed = |id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        cli.typed = Typed {
            key: typed("key"),
            token: typed("token"),
        };
        Ok(cli)
    }
}

/// How the command ended, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Done = 0,
    Failed = 1,
    Rejected = 3,
    Interrupted = 130,
}

/// Where output goes: human lines, or one JSON object per line.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// A failure: the contract's error body on stdout with `--json`, else `upload: code:
    /// message` on stderr (with what it was about, when it was about a file).
    pub fn failure(&self, about: Option<&str>, failure: &Failure) {
        if self.json {
            let mut value = failure.to_json();
            if let Some(about) = about {
                value["path"] = serde_json::Value::String(about.to_owned());
            }
            println!("{value}");
        } else {
            match about {
                Some(about) => eprintln!("upload: {about}: {failure}"),
                None => eprintln!("upload: {failure}"),
            }
        }
    }
}

fn main() {
    let cli = Cli::from_args(std::env::args_os()).unwrap_or_else(|err| err.exit());
    let output = Output { json: cli.json };
    let exit = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(commands::run(cli, output)),
        Err(err) => {
            output.failure(None, &Failure::io("starting the runtime", &err));
            Exit::Failed
        }
    };
    // Not returning through the runtime's drop: an interrupted upload's reads on blocking
    // threads need not be waited for.
    std::process::exit(exit as i32);
}

/// The settings every command needs: where, and as whom.
pub struct Settings {
    pub api: String,
    pub bearer: String,
}

impl Cli {
    fn settings(&self) -> Result<Settings, Failure> {
        let api = self
            .api
            .clone()
            .filter(|api| !api.is_empty())
            .ok_or_else(|| {
                Failure::new(
                    "configuration",
                    "no API: pass --api URL or set UPLOAD_API (…/v1/projects/PROJECT)",
                )
            })?;
        // Typed before the environment's; a token before a key from the same place.
        let (token, key) = (self.token.as_ref(), self.key.as_ref());
        let typed = [
            token.filter(|_| self.typed.token),
            key.filter(|_| self.typed.key),
        ];
        let bearer = typed
            .into_iter()
            .chain([token, key])
            .flatten()
            .find(|value| !value.is_empty())
            .cloned()
            .ok_or_else(|| {
                Failure::new(
                    "configuration",
                    "no credentials: pass --key or set UPLOAD_KEY (or --token / UPLOAD_TOKEN)",
                )
            })?;
        Ok(Settings { api, bearer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::from_args(std::iter::once("upload").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn put_takes_files_metadata_type_and_wait() {
        let cli = parse(&[
            "--api",
            "http://x/v1/projects/p",
            "--key",
            "upk_1",
            "put",
            "a.bin",
            "b.txt",
            "--meta",
            "k=v",
            "--meta",
            "empty=",
            "--meta",
            "eq=a=b",
            "--type",
            "text/plain",
            "--wait",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        let Command::Put(put) = cli.command else {
            panic!("not put");
        };
        assert_eq!(put.files, [PathBuf::from("a.bin"), PathBuf::from("b.txt")]);
        let options = put.options();
        assert_eq!(
            options.metadata,
            BTreeMap::from([
                ("k".into(), "v".into()),
                ("empty".into(), String::new()),
                ("eq".into(), "a=b".into())
            ])
        );
        assert_eq!(options.content_type.as_deref(), Some("text/plain"));
        assert!(options.wait && !options.restart);
        assert_eq!(options.parallel, 4);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["put"]).is_err(), "put needs a file");
        assert!(parse(&["put", "a", "--meta", "novalue"]).is_err());
        assert!(parse(&["put", "a", "--meta", "=v"]).is_err());
        assert!(parse(&["put", "a", "--parallel", "0"]).is_err());
        assert!(parse(&["ls", "--status", "lost"]).is_err());
        assert!(parse(&["get"]).is_err(), "get needs an id");
        assert!(parse(&["frobnicate"]).is_err());
    }

    #[test]
    fn ls_get_and_rm_parse() {
        let cli = parse(&["ls", "--status", "verified", "--limit", "5"]).unwrap();
        assert!(
            matches!(cli.command, Command::Ls { status: Some(ref s), limit: Some(5) } if s == "verified")
        );
        let cli = parse(&["get", "f-1", "-o", "out.bin"]).unwrap();
        assert!(matches!(cli.command, Command::Get { ref id, output: Some(_) } if id == "f-1"));
        let cli = parse(&["rm", "f-1"]).unwrap();
        assert!(matches!(cli.command, Command::Rm { ref id } if id == "f-1"));
    }

    #[test]
    fn a_token_is_used_before_a_key_and_one_of_them_is_needed() {
        let cli = parse(&[
            "--api", "http://x", "--key", "upk_1", "--token", "upt_2", "ls",
        ])
        .unwrap();
        assert_eq!(cli.settings().unwrap().bearer, "upt_2");
        // A typed key outranks a token from the environment, wherever the flag stands.
        let cli = parse(&["--api", "http://x", "ls", "--key", "upk_1"]).unwrap();
        assert!(cli.typed.key && !cli.typed.token);
        assert_eq!(cli.settings().unwrap().bearer, "upk_1");
        let cli = parse(&["--api", "http://x", "--key", "", "--token", "", "ls"]).unwrap();
        assert_eq!(
            cli.settings().err().map(|f| f.code).as_deref(),
            Some("configuration")
        );
    }
}
