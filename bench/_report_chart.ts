// bench.svg, the chart of `deno task bench:report` (report.ts): the median time per operation of
// every peer, grouped by workload, on a log scale.

import type { Report } from "./_report_data.ts";
import { formatNs } from "./_report_markdown.ts";

// --- the chart ---------------------------------------------------------------------------------------

const COLORS: Record<string, string> = {
  pseudo: "#1f6fd1",
  "pseudo-1": "#1f6fd1",
  "pseudo-scaled": "#79aef0",
  "pseudo-malloc": "#79aef0",
  libc: "#e07b20",
  "libc-malloc": "#f2b57d",
  thing: "#2c9a48",
  u8: "#8a55c4",
  mmap: "#7a7a7a",
  floor: "#c9c9c9",
  "floor-checked": "#a0a0a0",
  minimal: "#5f5f5f",
  segregated: "#c23b3b",
  "first-fit": "#e89aa0",
  "mmap-allocator": "#9c6b30",
  bump: "#d4c24a",
  cell: "#6fc7c1",
  dlmalloc: "#16707a",
  tlsf: "#b0409a",
  "write-memset": "#dddddd",
  "write-memset-number": "#cccccc",
  "write-fill": "#bbbbbb",
};

const LEGEND = [
  { color: COLORS.pseudo!, label: "PseudoMalloc" },
  { color: COLORS.libc!, label: "libc via FFI" },
  { color: COLORS.thing!, label: "@thi.ng/malloc" },
  { color: COLORS.u8!, label: "new Uint8Array(n)" },
  { color: COLORS.mmap!, label: "mmap + munmap" },
  { color: COLORS.floor!, label: "JS floor (pop + push)" },
  { color: COLORS["floor-checked"]!, label: "JS floor + checks" },
  { color: COLORS.minimal!, label: "minimal JS allocator (floor + checks + slow paths)" },
  { color: COLORS["pseudo-scaled"]!, label: "PseudoMalloc: malloc (5c) / 256 MiB live (6)" },
  { color: COLORS["libc-malloc"]!, label: "libc: malloc (5c)" },
  { color: COLORS.segregated!, label: "SegregatedAllocator" },
  { color: COLORS["first-fit"]!, label: "FirstFitAllocator" },
  { color: COLORS["mmap-allocator"]!, label: "MmapAllocator" },
  { color: COLORS.bump!, label: "BumpAllocator (11)" },
  { color: COLORS.cell!, label: "CellAllocator (11)" },
  { color: COLORS.dlmalloc!, label: "dlmalloc (sql.js, wasm)" },
  { color: COLORS.tlsf!, label: "TLSF (AssemblyScript, wasm)" },
  { color: COLORS["write-fill"]!, label: "8: the write alone (memset, fill)" },
];

const CHART_GROUPS = [
  { workload: "pair", label: ["1. 64 B", "pair"] },
  { workload: "batch", label: ["2. mixed", "batches"] },
  { workload: "churn", label: ["3. churn", "step"] },
  { workload: "large", label: ["4. large", "repeating"] },
  { workload: "calloc-small", label: ["5a. calloc", "small"] },
  { workload: "calloc-large", label: ["5b. calloc", "large"] },
  { workload: "calloc-fresh", label: ["5c. fresh", "64 MiB"] },
  { workload: "realloc", label: ["5d. realloc", "chain"] },
  { workload: "scale-pair", label: ["6a. scale:", "pair"] },
  { workload: "scale-churn", label: ["6b. scale:", "churn"] },
  { workload: "medium", label: ["7. 1-64 KiB", "churn"] },
  { workload: "medium-written", label: ["8. the same,", "written"] },
  { workload: "large-mixed", label: ["9. 64 KiB-", "4 MiB churn"] },
  { workload: "realloc-chain", label: ["10. realloc", "own process"] },
  { workload: "new-heap", label: ["11. new", "heap"] },
];

/** 1 ns, 10 ns, ..., 1 µs, ...: an axis tick. */
function formatDecade(ns: number): string {
  const [value, unit] = ns >= 1e6 ? [ns / 1e6, "ms"] : ns >= 1e3 ? [ns / 1e3, "µs"] : [ns, "ns"];
  return `${Number(value.toPrecision(1))} ${unit}`;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function svgChart(report: Report): string {
  const list = report.measurements;
  const groups = CHART_GROUPS.map((group) => ({
    ...group,
    bars: list.filter((m) => m.workload === group.workload),
  })).filter((group) => group.bars.length > 0);
  const values = groups.flatMap((group) => group.bars.map((bar) => bar.medianNs));
  const low = 10 ** Math.floor(Math.log10(Math.max(0.1, Math.min(...values))));
  // Headroom above the tallest bar for its label.
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values) * 4));
  const decades = Math.max(1, Math.round(Math.log10(high / low)));

  const bar = 16;
  const gap = 3;
  const groupGap = 26;
  const left = 78;
  const groupWidths = groups.map((group) => group.bars.length * (bar + gap) - gap);
  const plotWidth = groupWidths.reduce((sum, width) => sum + width + groupGap, groupGap);
  // Legend rows, wrapped to the chart's width (at most about 7.4 px per character at 12 px, and a gap).
  const itemWidth = (label: string) => 34 + label.length * 7.4;
  const rows: (typeof LEGEND)[] = [[]];
  for (const item of LEGEND) {
    const row = rows[rows.length - 1]!;
    const used = row.reduce((sum, other) => sum + itemWidth(other.label), 0);
    if (row.length > 0 && used + itemWidth(item.label) > plotWidth) rows.push([item]);
    else row.push(item);
  }
  const top = 56 + rows.length * 18;
  const plotHeight = 320;
  const width = left + plotWidth + 20;
  const height = top + plotHeight + 78;
  const y = (ns: number) => top + plotHeight * (1 - Math.log10(ns / low) / decades);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">@pseudo/malloc: median time ` +
      `per operation (log scale, lower is better)</text>`,
    `<text x="${left}" y="40" fill="#555">${
      escapeXml(
        `${report.machine.cpu}, ${report.machine.cores} cores, Deno ${report.machine.deno}, ` +
          `${report.generated.slice(0, 10)}`,
      )
    }</text>`,
  );
  // Legend.
  for (const [index, row] of rows.entries()) {
    let lx = left;
    const ly = 58 + index * 18;
    for (const item of row) {
      out.push(
        `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${item.color}"/>`,
        `<text x="${lx + 16}" y="${ly}">${escapeXml(item.label)}</text>`,
      );
      lx += itemWidth(item.label);
    }
  }
  // Axes and decade grid.
  for (let d = 0; d <= decades; d++) {
    const value = low * 10 ** d;
    const gy = y(value);
    out.push(
      `<line x1="${left}" y1="${gy}" x2="${left + plotWidth}" y2="${gy}" stroke="#e3e3e3"/>`,
      `<text x="${left - 6}" y="${gy + 4}" text-anchor="end">${formatDecade(value)}</text>`,
    );
  }
  out.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" ` +
      `y2="${top + plotHeight}" stroke="#333"/>`,
    `<text transform="translate(16 ${top + plotHeight / 2}) rotate(-90)" text-anchor="middle">` +
      `time per operation (log scale)</text>`,
  );
  // Bars.
  let x = left + groupGap;
  for (const [index, group] of groups.entries()) {
    for (const measured of group.bars) {
      const by = y(measured.medianNs);
      const color = COLORS[measured.peer] ?? "#999";
      out.push(
        `<rect x="${x}" y="${by.toFixed(1)}" width="${bar}" ` +
          `height="${(top + plotHeight - by).toFixed(1)}" fill="${color}">` +
          `<title>${escapeXml(`${measured.name}: ${formatNs(measured.medianNs)}`)}</title></rect>`,
        `<text x="${x + bar / 2 + 3}" y="${(by - 4).toFixed(1)}" font-size="9" ` +
          `text-anchor="start" transform="rotate(-90 ${x + bar / 2 + 3} ${(by - 4).toFixed(1)})">` +
          `${escapeXml(formatNs(measured.medianNs))}</text>`,
      );
      x += bar + gap;
    }
    const center = x - gap - groupWidths[index]! / 2;
    for (const [line, text] of group.label.entries()) {
      out.push(
        `<text x="${center}" y="${top + plotHeight + 18 + line * 14}" text-anchor="middle">${
          escapeXml(text)
        }</text>`,
      );
    }
    x += groupGap - gap;
  }
  out.push(
    `<text x="${left + plotWidth / 2}" y="${height - 12}" text-anchor="middle">` +
      `workload (one operation: a malloc+free pair, a churn step, a realloc chain or a new heap)` +
      `</text>`,
    `</svg>`,
    "",
  );
  return out.join("\n");
}
