// Pictures of a heap: a text rendering for terminals and an SVG rendering for documents. Pure: it
// draws what it is given, so any allocator can describe its memory this way.

/** The state of a block in a picture. */
export type BlockState = "live" | "cached" | "free";

/** One block of an arena, for a picture. */
export interface PictureBlock {
  offset: number;
  size: number;
  order: number;
  state: BlockState;
}

/** One arena: its address, size and blocks in address order. */
export interface ArenaPicture {
  base: number;
  size: number;
  blocks: PictureBlock[];
}

/** One large block with its own mapping. */
export interface MappingPicture {
  address: number;
  length: number;
  requested: number;
}

const SHADES = ["·", "░", "▒", "▓", "█"];
/** Large mappings drawn one by one in an SVG; the others are summed up in one line. */
const MAPPINGS_DRAWN = 24;
const CELLS = 1024;
const ROW = 64;

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

function formatBytes(bytes: number): string {
  const format = (value: number) => Number.isInteger(value) ? String(value) : value.toFixed(1);
  if (bytes >= 1 << 20) return `${format(bytes / (1 << 20))} MiB`;
  if (bytes >= 1024) return `${format(bytes / 1024)} KiB`;
  return `${bytes} B`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/**
 * Text: per arena a header line and 16 rows of 64 cells, each cell `size / 1024` bytes, shaded by
 * how much of it live blocks cover (`·` none, `░▒▓` some, `█` all); then one line per large mapping.
 */
export function renderText(arenas: ArenaPicture[], mappings: MappingPicture[]): string {
  const lines: string[] = [];
  arenas.forEach((arena, index) => {
    const used = new Float64Array(CELLS);
    const cellSize = arena.size / CELLS;
    let live = 0;
    for (const block of arena.blocks) {
      if (block.state !== "live") continue;
      live += block.size;
      for (let at = block.offset; at < block.offset + block.size;) {
        const cell = Math.floor(at / cellSize);
        const end = Math.min(block.offset + block.size, (cell + 1) * cellSize);
        used[cell]! += end - at;
        at = end;
      }
    }
    lines.push(
      `arena ${index} at ${hex(arena.base)}: ${arena.size - live} of ${arena.size} bytes free`,
    );
    for (let row = 0; row < CELLS; row += ROW) {
      let line = "";
      for (let cell = row; cell < row + ROW; cell++) {
        const fraction = used[cell]! / cellSize;
        line += SHADES[fraction === 0 ? 0 : fraction === 1 ? 4 : 1 + Math.floor(fraction * 2.999)];
      }
      lines.push(line);
    }
  });
  if (mappings.length > 0) {
    const total = mappings.reduce((sum, mapping) => sum + mapping.length, 0);
    lines.push(`${mappings.length} large mappings, ${total} bytes`);
  }
  return lines.join("\n");
}

/** Fill colour of a live block: one hue per order, small blocks warm, large blocks cool. */
function liveColour(order: number): string {
  return `hsl(${(order * 23) % 360} 65% 50%)`;
}

/**
 * SVG: one strip per arena, every block a `<rect class="block live|cached|free">` whose x and width
 * are its offset and size (a block's edges show how the arena was split), coloured by order when
 * live; then one bar per large mapping (the first 24; a line sums up the rest), its requested part
 * filled. A legend names the colours.
 */
export function renderSvg(arenas: ArenaPicture[], mappings: MappingPicture[]): string {
  const width = 1024;
  const left = 150;
  const strip = 28;
  const gap = 14;
  const parts: string[] = [];
  let y = 40;
  parts.push(
    `<text x="10" y="24" class="title">Heap map: ${plural(arenas.length, "arena")}, ${
      plural(mappings.length, "large mapping")
    }</text>`,
  );
  arenas.forEach((arena, index) => {
    const scale = width / arena.size;
    parts.push(`<g class="arena" data-base="${hex(arena.base)}">`);
    parts.push(`<text x="10" y="${y + 12}">arena ${index}</text>`);
    parts.push(`<text x="10" y="${y + 25}" class="small">${hex(arena.base)}</text>`);
    for (const block of arena.blocks) {
      const x = left + block.offset * scale;
      const w = Math.max(block.size * scale, 0.05);
      const fill = block.state === "live"
        ? liveColour(block.order)
        : block.state === "cached"
        ? "#f2c14e"
        : "#eeeeee";
      parts.push(
        `<rect class="block ${block.state}" x="${x.toFixed(3)}" y="${y}" width="${
          w.toFixed(3)
        }" height="${strip}" fill="${fill}"><title>${hex(arena.base + block.offset)}: ${
          formatBytes(block.size)
        } ${block.state}</title></rect>`,
      );
    }
    parts.push(
      `<rect x="${left}" y="${y}" width="${width}" height="${strip}" fill="none" stroke="#333"/>`,
    );
    parts.push(`</g>`);
    y += strip + gap;
  });
  const longest = Math.max(1, ...mappings.map((mapping) => mapping.length));
  for (const mapping of mappings.slice(0, MAPPINGS_DRAWN)) {
    const w = (mapping.length / longest) * width;
    const used = (mapping.requested / longest) * width;
    parts.push(`<g class="mapping">`);
    parts.push(`<text x="10" y="${y + 14}">${hex(mapping.address)}</text>`);
    parts.push(
      `<rect x="${left}" y="${y}" width="${
        w.toFixed(3)
      }" height="18" fill="#dde6f5" stroke="#333"/>`,
    );
    parts.push(
      `<rect x="${left}" y="${y}" width="${used.toFixed(3)}" height="18" fill="#4a78c2"><title>${
        formatBytes(mapping.length)
      } mapped, ${mapping.requested} B requested</title></rect>`,
    );
    parts.push(`</g>`);
    y += 18 + 6;
  }
  if (mappings.length > MAPPINGS_DRAWN) {
    const rest = mappings.slice(MAPPINGS_DRAWN);
    const bytes = rest.reduce((sum, mapping) => sum + mapping.length, 0);
    parts.push(
      `<text x="${left}" y="${y + 14}">… and ${plural(rest.length, "more large mapping")}, ${
        formatBytes(bytes)
      } in all</text>`,
    );
    y += 24;
  }
  y += 10;
  const legend: [string, string][] = [
    ["live, small order", liveColour(0)],
    ["live, larger order", liveColour(6)],
    ["cached (freed, kept for reuse)", "#f2c14e"],
    ["free", "#eeeeee"],
  ];
  legend.forEach(([label, colour], i) => {
    const x = left + i * 250;
    parts.push(`<rect x="${x}" y="${y}" width="14" height="14" fill="${colour}" stroke="#333"/>`);
    parts.push(`<text x="${x + 20}" y="${y + 12}">${label}</text>`);
  });
  y += 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${
      left + width + 20
    }" height="${y}" viewBox="0 0 ${
      left + width + 20
    } ${y}" font-family="sans-serif" font-size="12">`,
    `<style>.title { font-size: 15px; font-weight: bold; } .block { stroke: #333; stroke-width: 0.2; } .small { font-size: 10px; }</style>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...parts,
    `</svg>`,
  ].join("\n");
}
