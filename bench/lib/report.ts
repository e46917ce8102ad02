/**
 * The benchmark's results as Markdown: a header saying where and how it ran (machine, load, mode), one table per
 * section with its notes, and a summary of the targets (met / NOT met / not measured). Printed to stdout
 * and written to bench/results/latest.md.
 */

export interface Table {
  header: string[];
  rows: string[][];
}

export interface Section {
  title: string;
  tables: Table[];
  notes: string[];
}

export interface TargetCheck {
  target: string;
  goal: string;
  measured: string;
  /** undefined: not measured in this run. */
  met: boolean | undefined;
}

export class Report {
  readonly sections: Section[] = [];
  readonly targets: TargetCheck[] = [];
  readonly warnings: string[] = [];

  /** `judge` false (quick mode): targets are listed but not judged, the figures prove only that the harness runs. */
  constructor(readonly judge = true) {}

  section(title: string): Section {
    const section: Section = { title, tables: [], notes: [] };
    this.sections.push(section);
    return section;
  }

  target(check: TargetCheck): void {
    this.targets.push(check);
  }

  /** Something the reader must not miss (a part not measured, a failure): shown at the top, loudly. */
  warn(message: string): void {
    this.warnings.push(message);
  }

  render(header: string[]): string {
    const out: string[] = ["# Auxot benchmark", "", ...header, ""];
    if (this.warnings.length > 0) {
      out.push("## ⚠ Not measured or failed", "");
      for (const warning of this.warnings) out.push(`- **${warning}**`);
      out.push("");
    }
    // Sections are numbered ("4. …"); some are written after later ones (the idle window ends last).
    const ordered = [...this.sections].sort((a, b) => parseFloat(a.title) - parseFloat(b.title));
    for (const section of ordered) {
      out.push(`## ${section.title}`, "");
      for (const table of section.tables) out.push(...markdownTable(table), "");
      for (const note of section.notes) out.push(`- ${note}`);
      if (section.notes.length > 0) out.push("");
    }
    out.push("## Targets", "");
    out.push(...markdownTable({
      header: ["Target", "Goal", "Measured", "Status"],
      rows: this.targets.map((t) => [
        t.target,
        t.goal,
        t.measured,
        t.met === undefined ? "not measured" : !this.judge ? "not judged (quick mode)" : t.met ? "met" : "NOT met",
      ]),
    }));
    out.push("");
    return out.join("\n");
  }
}

function markdownTable(table: Table): string[] {
  const widths = table.header.map((h, i) => Math.max(h.length, ...table.rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (c ?? "").padEnd(widths[i])).join(" | ")} |`;
  return [line(table.header), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...table.rows.map(line)];
}
