//! Man pages and shell completions for vigil's binaries, written at packaging time
//! (`deploy/build-deb`) by each binary's hidden `generate-manual` subcommand.
//!
//! Owns: turning a clap definition into man pages (the command and each visible
//! subcommand, plus sections the binary adds: FILES, EXIT STATUS, SEE ALSO) and bash and
//! zsh completions; turning the Markdown config reference into vigil.toml(5)
//! ([`markdown`]). Generated from the same definitions the binaries parse with, so the
//! pages cannot drift from the options.
//!
//! Must not: run on the daemon's path (only the hidden subcommand calls it), or know
//! what the commands mean: the binaries pass their definitions and texts in.

pub mod markdown;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// `BIN generate-manual DIR [--config-reference FILE]`: what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where the pages and completions go.
    pub out: PathBuf,
    /// The Markdown config reference to render as vigil.toml(5), if any.
    pub config_reference: Option<PathBuf>,
}

/// The packaging hook, looked for before clap parses `args` (the program's arguments
/// after its name): `generate-manual DIR [--config-reference FILE]`. It is kept out of
/// the clap definitions on purpose: clap_complete would offer a hidden subcommand in
/// the completions, and the pages must show only what operators use.
/// `None` when `args` are not such a request; `Some(Err)` for a malformed one.
pub fn request(args: &[std::ffi::OsString]) -> Option<Result<Request, String>> {
    if args.first().is_none_or(|a| a != "generate-manual") {
        return None;
    }
    let usage = "usage: generate-manual DIR [--config-reference FILE]";
    let mut out = None;
    let mut config_reference = None;
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        if arg == "--config-reference" {
            let Some(file) = rest.next() else {
                return Some(Err(usage.to_string()));
            };
            config_reference = Some(PathBuf::from(file));
        } else if out.is_none() && !arg.to_string_lossy().starts_with('-') {
            out = Some(PathBuf::from(arg));
        } else {
            return Some(Err(format!(
                "{}: unexpected; {usage}",
                arg.to_string_lossy()
            )));
        }
    }
    Some(match out {
        Some(out) => Ok(Request {
            out,
            config_reference,
        }),
        None => Err(usage.to_string()),
    })
}

/// A section a binary adds to its man page after the generated ones.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    /// The section's title, e.g. `FILES`.
    pub title: &'a str,
    /// Paragraphs of plain text (escaped here).
    pub text: &'a [&'a str],
    /// Tagged entries `(tag, text)`, e.g. a path and what it holds.
    pub items: &'a [(&'a str, &'a str)],
}

/// How a binary's pages are labelled and what they add.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// The man section, e.g. `8`.
    pub section: &'a str,
    /// The footer's source, e.g. `vigil 0.1.0`.
    pub source: &'a str,
    /// The header's manual title.
    pub manual: &'a str,
    /// Added to the command's own page (not to its subcommands' pages).
    pub extra: &'a [Section<'a>],
    /// Pages for SEE ALSO, as `name(section)`.
    pub see_also: &'a [&'a str],
}

/// Writes `cmd`'s man pages into `dir/man/` (`NAME.SECTION`, and `NAME-SUB.SECTION` for
/// each visible subcommand, at any depth, as the generated SUBCOMMANDS sections name
/// them) and its completions into `dir/completions/` (`NAME.bash`, `_NAME` for zsh).
/// Returns the files written.
pub fn write_command(cmd: clap::Command, page: &Page<'_>, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let man_dir = dir.join("man");
    let completion_dir = dir.join("completions");
    fs::create_dir_all(&man_dir)?;
    fs::create_dir_all(&completion_dir)?;
    let mut written = Vec::new();

    // `help` has no page of its own (every page is the help); building fills in what
    // parsing would, among it each subcommand's display name `PARENT-SUB`.
    let mut for_man = cmd.clone().disable_help_subcommand(true);
    for_man.build();
    let name = for_man.get_name().to_string();
    let mut own = man_page(&for_man, page)?;
    for section in page.extra {
        own.push_str(&render_section(section));
    }
    own.push_str(&see_also(page.see_also));
    written.push(write(
        &man_dir.join(format!("{name}.{}", page.section)),
        &own,
    )?);
    subcommand_pages(&for_man, &name, page, &man_dir, &mut written)?;

    // Completions of the command as it parses, `help` included.
    let mut cmd = cmd;
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd, name.clone(), &mut text);
        let path = completion_dir.join(file);
        fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

fn subcommand_pages(
    parent: &clap::Command,
    parent_page: &str,
    page: &Page<'_>,
    man_dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    // Hidden ones are not for operators.
    for sub in parent.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = display_name(sub);
        let mut text = man_page(sub, page)?;
        text.push_str(&see_also(&[&format!("{parent_page}({})", page.section)]));
        written.push(write(
            &man_dir.join(format!("{name}.{}", page.section)),
            &text,
        )?);
        subcommand_pages(sub, &name, page, man_dir, written)?;
    }
    Ok(())
}

fn display_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

/// The generated page of a built `cmd`: its sections, without clap_mangen's trailing
/// VERSION and AUTHORS (the footer has the version).
fn man_page(cmd: &clap::Command, page: &Page<'_>) -> io::Result<String> {
    let man = clap_mangen::Man::new(cmd.clone())
        .title(display_name(cmd).to_uppercase())
        .section(page.section)
        .source(page.source)
        .manual(page.manual)
        .date(date());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        man.render_extra_section(&mut out)?;
    }
    String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn write(path: &Path, text: &str) -> io::Result<PathBuf> {
    fs::write(path, text)?;
    Ok(path.to_path_buf())
}

fn render_section(section: &Section<'_>) -> String {
    let mut out = format!(".SH \"{}\"\n", escape_text(section.title));
    for paragraph in section.text {
        out.push_str(&format!(".PP\n{}\n", escape_text(paragraph)));
    }
    for (tag, text) in section.items {
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            escape_text(tag).replace('-', "\\-"),
            escape_text(text)
        ));
    }
    out
}

/// The `.TH` line.
pub(crate) fn title_line(name: &str, section: &str, source: &str, manual: &str) -> String {
    format!(
        ".TH {} {} {} \"{}\" \"{}\"\n",
        escape_text(&name.to_uppercase()),
        section,
        date(),
        escape_text(source),
        escape_text(manual)
    )
}

/// The pages' date, `YYYY-MM-DD`: `SOURCE_DATE_EPOCH` when set (reproducible builds;
/// deploy/build-deb sets it to the last commit's time), else today. A date is needed
/// anyway: clap_mangen writes an empty one as no argument, shifting the others.
pub(crate) fn date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    civil_date(secs / 86_400)
}

/// Days since 1970-01-01 to `YYYY-MM-DD`.
fn civil_date(days: u64) -> String {
    vigil_proto::UtcTime::from_unix_ms(days.saturating_mul(86_400_000)).date()
}

/// A SEE ALSO section listing `pages` (`name(section)`), names in bold.
pub(crate) fn see_also(pages: &[&str]) -> String {
    if pages.is_empty() {
        return String::new();
    }
    let refs: Vec<String> = pages
        .iter()
        .map(|p| match p.split_once('(') {
            Some((name, rest)) => format!("\\fB{}\\fR({rest}", escape_text(name)),
            None => escape_text(p),
        })
        .collect();
    format!(".SH \"SEE ALSO\"\n{}\n", refs.join(", "))
}

/// Text for roff: a backslash must be written `\e`. (A line's leading `.` or `'` is the
/// caller's concern: only it knows where lines start.)
pub(crate) fn escape_text(text: &str) -> String {
    text.replace('\\', "\\e")
}

/// The font around inline text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Font {
    Roman,
    Bold,
    Italic,
}

impl Font {
    pub(crate) fn escape(self) -> &'static str {
        match self {
            Font::Roman => "\\fR",
            Font::Bold => "\\fB",
            Font::Italic => "\\fI",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn demo() -> Command {
        Command::new("demo")
            .about("A demo")
            .version("1.0")
            .arg(Arg::new("config").long("config").help("The file"))
            .subcommand(
                Command::new("check")
                    .about("Checks")
                    .subcommand(Command::new("deep").about("Deeper")),
            )
    }

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(20_793), "2026-12-06");
        assert_eq!(civil_date(20_513), "2026-03-01");
    }

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(|a| a.into()).collect()
    }

    #[test]
    fn the_hook_is_recognised_only_as_the_first_argument() {
        assert_eq!(request(&args(&[])), None);
        assert_eq!(request(&args(&["status", "generate-manual"])), None);
        assert_eq!(
            request(&args(&[
                "generate-manual",
                "d",
                "--config-reference",
                "c.md"
            ])),
            Some(Ok(Request {
                out: "d".into(),
                config_reference: Some("c.md".into())
            }))
        );
        assert_eq!(
            request(&args(&["generate-manual", "d"])),
            Some(Ok(Request {
                out: "d".into(),
                config_reference: None
            }))
        );
        for bad in [
            &["generate-manual"][..],
            &["generate-manual", "d", "e"],
            &["generate-manual", "d", "--config-reference"],
            &["generate-manual", "--x"],
        ] {
            assert!(matches!(request(&args(bad)), Some(Err(_))), "{bad:?}");
        }
    }

    const PAGE: Page<'static> = Page {
        section: "8",
        source: "vigil 1.0",
        manual: "vigil manual",
        extra: &[Section {
            title: "FILES",
            text: &["Text with a \\ backslash."],
            items: &[("/etc/demo.toml", "the file")],
        }],
        see_also: &["other(5)"],
    };

    #[test]
    fn pages_for_the_command_and_each_visible_subcommand_and_completions() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut written = write_command(demo(), &PAGE, &dir).unwrap();
        written.sort();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "completions/_demo",
                "completions/demo.bash",
                "man/demo-check-deep.8",
                "man/demo-check.8",
                "man/demo.8",
            ]
        );
        let page = fs::read_to_string(dir.join("man/demo.8")).unwrap();
        let th = format!(".TH DEMO 8 {} \"vigil 1.0\" \"vigil manual\"\n", date());
        assert!(page.contains(&th), "{page}");
        assert!(page.contains("\\-\\-config"), "{page}");
        assert!(page.contains(".SH \"FILES\"\n.PP\nText with a \\e backslash.\n.TP\n\\fB/etc/demo.toml\\fR\nthe file\n"), "{page}");
        assert!(
            page.ends_with(".SH \"SEE ALSO\"\n\\fBother\\fR(5)\n"),
            "{page}"
        );
        let sub = fs::read_to_string(dir.join("man/demo-check.8")).unwrap();
        assert!(sub.contains("demo\\-check\\-deep(8)"), "{sub}");
        assert!(!page.contains("EXTRA"), "{page}");
        assert!(sub.ends_with("\\fBdemo\\fR(8)\n"), "{sub}");
        let bash = fs::read_to_string(dir.join("completions/demo.bash")).unwrap();
        assert!(bash.contains("complete -F _demo"), "{bash}");
    }
}
