/**
 * A table as Markdown (it pastes into BENCHMARKS.md as it is): columns padded
 * to their widest cell, the `numeric` ones (by index) right-aligned.
 */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  numeric: ReadonlySet<number> = new Set(),
): string {
  const widths = header.map((title, column) =>
    Math.max(3, title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: readonly string[]) =>
    `| ${widths
      .map((width, column) => {
        const cell = cells[column] ?? "";
        return numeric.has(column) ? cell.padStart(width) : cell.padEnd(width);
      })
      .join(" | ")} |`;
  const rule = `|${widths
    .map((width, column) =>
      numeric.has(column) ? ` ${"-".repeat(width - 1)}: ` : ` ${"-".repeat(width)} `,
    )
    .join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}
