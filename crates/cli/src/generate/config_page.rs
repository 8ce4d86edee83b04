//! `aps.toml(5)`: the config file's man page, made from the config reference in
//! docs/cli.md (from "The config file" to "Bad configs"), so that `man 5 aps.toml` says
//! what the reference says, in the version of the binary that reads the file.
//!
//! The Markdown is parsed by `pulldown-cmark` and written with `roff` (which escapes
//! dashes, backslashes and leading dots). Tables, which a terminal cannot show as the
//! reference's wide rows, become tagged paragraphs: the first cell as the tag, the
//! others under it, each named by its column when there are more than two.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use roff::{bold, italic, roman, Inline, Roff};

/// The reference the page is made from: docs/cli.md, through the link `crates/cli/cli.md`
/// (a crate's package may hold no file outside its folder; `cargo package` copies the
/// linked file in).
const REFERENCE: &str = include_str!("../../cli.md");
/// The first heading of the page's part of the reference.
const FIRST: &str = "\n## The config file\n";
/// The heading after its last part.
const AFTER: &str = "\n## Signals, stopping and crashes\n";

/// The page, rendered (`aps.toml.5`).
pub(crate) fn page() -> Result<String, String> {
    let start = REFERENCE
        .find(FIRST)
        .ok_or("docs/cli.md has no \"## The config file\" section")?;
    let end = REFERENCE[start..]
        .find(AFTER)
        .map(|n| start + n)
        .ok_or("docs/cli.md has no \"## Signals, stopping and crashes\" section")?;
    let mut page = Page::default();
    page.head();
    page.markdown(&REFERENCE[start..end]);
    page.tail();
    Ok(ascii(&page.roff.render()))
}

/// `text` with every character beyond ASCII as a roff escape (`…` as `\[u2026]`): a
/// page read without its encoding declared (`groff` alone, some `man`) shows them
/// right.
fn ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

/// A table as it is read: rows of cells, the head first.
#[derive(Debug, Default)]
struct Table {
    rows: Vec<Vec<Vec<Inline>>>,
}

#[derive(Debug, Default)]
struct Page {
    roff: Roff,
    /// The text line being built.
    line: Vec<Inline>,
    /// Nesting of bold (strong) and italic (emphasis) spans.
    strong: usize,
    emphasis: usize,
    /// The heading being read (its text, plain).
    heading: Option<(HeadingLevel, String)>,
    /// Nesting of lists: the next number of an ordered one, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Whether the current list item has had a paragraph already.
    item_has_text: bool,
    table: Option<Table>,
}

impl Page {
    fn head(&mut self) {
        let version = format!("aps {}", env!("CARGO_PKG_VERSION"));
        self.roff
            .control(
                "TH",
                ["APS.TOML", "5", "\"\"", version.as_str(), "File Formats"],
            )
            .control("SH", ["NAME"])
            .text([roman(
                "aps.toml - the config file of aps, the job scheduler daemon",
            )])
            .control("SH", ["SYNOPSIS"])
            .text([bold("/etc/aps/aps.toml")])
            .control("br", [])
            .text([
                bold("aps run --config "),
                italic("FILE"),
                roman(" (or "),
                bold("APS_CONFIG"),
                roman(")"),
            ])
            .control("SH", ["DESCRIPTION"])
            .text([roman(
                "aps(1) reads its jobs, its store and its settings from this TOML file; \
                 the management commands (aps jobs, aps history) read the store from it. \
                 What follows is the config reference of docs/cli.md, installed as \
                 /usr/share/doc/aps/cli.md.",
            )]);
    }

    fn tail(&mut self) {
        self.roff.control("SH", ["SEE ALSO"]).text([
            bold("aps"),
            roman("(1), "),
            bold("aps-run"),
            roman("(1), "),
            bold("aps-config-check"),
            roman("(1), "),
            bold("crontab"),
            roman("(5)"),
        ]);
    }

    fn markdown(&mut self, text: &str) {
        for event in Parser::new_ext(text, Options::ENABLE_TABLES) {
            self.event(event);
        }
        self.flush();
    }

    /// Styles `text` as the spans around it say.
    fn styled(&self, text: &str) -> Inline {
        if self.strong > 0 {
            bold(text)
        } else if self.emphasis > 0 {
            italic(text)
        } else {
            roman(text)
        }
    }

    /// Where inline text goes: the heading, the table cell, or the line.
    fn push(&mut self, inline: Inline, plain: &str) {
        if let Some((_, heading)) = &mut self.heading {
            heading.push_str(plain);
        } else if let Some(cell) = self
            .table
            .as_mut()
            .and_then(|t| t.rows.last_mut())
            .and_then(|r| r.last_mut())
        {
            cell.push(inline);
        } else {
            self.line.push(inline);
        }
    }

    /// Writes the text line built so far.
    fn flush(&mut self) {
        if !self.line.is_empty() {
            self.roff.text(std::mem::take(&mut self.line));
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => {
                let inline = self.styled(&text);
                self.push(inline, &text);
            }
            // Inline code, as man pages show literal words: bold.
            Event::Code(code) => self.push(bold(code.as_ref()), &code),
            Event::SoftBreak => self.push(roman(" "), " "),
            Event::HardBreak => {
                self.flush();
                self.roff.control("br", []);
            }
            // The reference has no HTML, rules, footnotes or math; a rule is a gap.
            Event::Rule => {
                self.flush();
                self.roff.control("sp", []);
            }
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { level, .. } => {
                self.flush();
                self.heading = Some((level, String::new()));
            }
            Tag::Paragraph => {
                self.flush();
                if self.lists.is_empty() {
                    self.roff.control("PP", []);
                } else if self.item_has_text {
                    // A further paragraph of a list item keeps the item's indent.
                    self.roff.control("sp", []);
                }
                self.item_has_text = true;
            }
            Tag::CodeBlock(_) => {
                self.flush();
                self.roff
                    .control("PP", [])
                    .control("RS", ["4"])
                    .control("nf", []);
            }
            Tag::List(first) => {
                self.flush();
                if !self.lists.is_empty() {
                    self.roff.control("RS", ["2"]);
                }
                self.lists.push(first);
            }
            Tag::Item => {
                self.flush();
                let mark = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{}.", *n - 1)
                    }
                    _ => "\\(bu".to_owned(),
                };
                self.roff.control("IP", [mark.as_str(), "3"]);
                self.item_has_text = false;
            }
            Tag::BlockQuote(_) => {
                self.flush();
                self.roff.control("RS", ["4"]);
            }
            Tag::Table(_) => {
                self.flush();
                self.table = Some(Table::default());
            }
            Tag::TableHead | Tag::TableRow => {
                if let Some(t) = &mut self.table {
                    t.rows.push(Vec::new());
                }
            }
            Tag::TableCell => {
                if let Some(row) = self.table.as_mut().and_then(|t| t.rows.last_mut()) {
                    row.push(Vec::new());
                }
            }
            Tag::Strong => self.strong += 1,
            Tag::Emphasis => self.emphasis += 1,
            // A link's text stays; its target is a section of this page or another
            // document of the package.
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) => {
                if let Some((level, text)) = self.heading.take() {
                    let text = text.trim().to_owned();
                    if level <= HeadingLevel::H2 {
                        self.roff.control("SH", [text.to_uppercase().as_str()]);
                    } else {
                        self.roff.control("SS", [text.as_str()]);
                    }
                }
            }
            TagEnd::Paragraph => self.flush(),
            TagEnd::CodeBlock => {
                // The block's text came as one or more Text events ending in newlines:
                // one roff line per source line, leading spaces kept (no-fill mode).
                let lines: String = std::mem::take(&mut self.line)
                    .into_iter()
                    .map(|i| match i {
                        Inline::Roman(s) | Inline::Bold(s) | Inline::Italic(s) => s,
                        Inline::LineBreak => "\n".to_owned(),
                    })
                    .collect();
                for line in lines.trim_end_matches('\n').split('\n') {
                    self.roff.text([roman(line)]);
                }
                self.roff.control("fi", []).control("RE", []);
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
                if self.lists.is_empty() {
                    self.roff.control("PP", []);
                } else {
                    self.roff.control("RE", []);
                }
            }
            TagEnd::Item => self.flush(),
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.roff.control("RE", []);
            }
            TagEnd::Table => {
                if let Some(table) = self.table.take() {
                    self.table_rows(table);
                }
            }
            TagEnd::Strong => self.strong = self.strong.saturating_sub(1),
            TagEnd::Emphasis => self.emphasis = self.emphasis.saturating_sub(1),
            _ => {}
        }
    }

    /// A table as tagged paragraphs: `.TP`, the first cell, then the others (named by
    /// their column's head when there are several).
    fn table_rows(&mut self, table: Table) {
        let mut rows = table.rows.into_iter();
        let head: Vec<String> = rows
            .next()
            .unwrap_or_default()
            .iter()
            .map(|cell| plain(cell))
            .collect();
        for row in rows {
            let mut cells = row.into_iter();
            let Some(tag) = cells.next() else { continue };
            self.roff.control("TP", []).text(tag);
            let rest: Vec<Vec<Inline>> = cells.collect();
            let named = rest.len() > 1;
            for (i, cell) in rest.into_iter().enumerate() {
                if i > 0 {
                    self.roff.control("br", []);
                }
                let mut line = Vec::with_capacity(cell.len() + 1);
                if named {
                    if let Some(name) = head.get(i + 1) {
                        line.push(italic(format!("{name}:")));
                        line.push(roman(" "));
                    }
                }
                line.extend(cell);
                self.roff.text(line);
            }
        }
        self.roff.control("PP", []);
    }
}

/// A cell's text without its styles.
fn plain(cell: &[Inline]) -> String {
    cell.iter()
        .map(|i| match i {
            Inline::Roman(s) | Inline::Bold(s) | Inline::Italic(s) => s.as_str(),
            Inline::LineBreak => " ",
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_holds_every_table_of_the_reference_and_its_keys() {
        let page = page().unwrap();
        assert!(page.contains(".TH APS.TOML 5"), "{}", &page[..200]);
        for section in ["THE CONFIG FILE", "WHAT A JOB RUNS", "BAD CONFIGS"] {
            assert!(page.contains(&format!(".SH \"{section}\"")), "{section}");
        }
        for sub in ["[scheduler]", "[store]", "Durations"] {
            assert!(page.contains(&format!(".SS {sub}\n")), "{sub}");
        }
        // Keys become tags (dashes escaped), their defaults and meanings follow.
        for key in [
            "leased_runs",
            "misfire_grace_time",
            "shutdown_grace",
            "poll_interval",
        ] {
            assert!(page.contains(&format!(".TP\n\\fB{key}\\fR\n")), "{key}");
        }
        assert!(page.contains("\\fIdefault:\\fR 30 s"));
        // Beyond ASCII only as escapes: `…` in a message.
        assert!(page.is_ascii());
        assert!(page.contains("run \\[u2026] at"));
        // Nothing after the config part.
        assert!(!page.contains("Graceful stop"));
    }

    #[test]
    fn code_blocks_keep_their_lines_and_text_cannot_start_a_request() {
        let mut page = Page::default();
        page.markdown(
            "Text.\n\n```toml\n[[jobs]]\n  id = \"x\"\n.not = a request\n```\n\n- one\n- two `a-b`\n",
        );
        let out = page.roff.to_roff();
        assert!(
            out.contains(".nf\n[[jobs]]\n  id = \"x\"\n\\&.not = a request\n.fi\n"),
            "{out}"
        );
        assert!(out.contains(".IP \\(bu 3\none\n"), "{out}");
        assert!(out.contains("two \\fBa\\-b\\fR"), "{out}");
    }
}
