/** Columns and rows for n call tiles: big tiles, 16:9 on wide screens, stacked on phones. */
export function gridShape(n: number, narrow: boolean): { cols: number; rows: number } {
  const cols = narrow ? (n <= 3 ? 1 : 2) : n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
  return { cols, rows: Math.max(1, Math.ceil(n / cols)) };
}
