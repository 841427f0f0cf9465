// Contour: the objective over two parameters as filled bands, from the grid the server
// interpolates (GET /sweeps/{id}/contour: linear over the completed trials' Delaunay
// triangles, in each axis's scale, blank outside their hull), with the trials on top.

import { LARGE, colorAt, extent, objectiveColors, paramAxis, scaleColors, trialScatter, xValue } from "./charts.js";

/** How many colour bands the objective's range is cut into. */
const BANDS = 12;

/** Cell edges around grid lines `positions` (in the axis's scale), halfway between neighbours. */
function edges(positions) {
  const out = [positions[0] - (positions[1] - positions[0]) / 2];
  for (let k = 1; k < positions.length; k++) out.push((positions[k - 1] + positions[k]) / 2);
  out.push(positions[positions.length - 1] + (positions[positions.length - 1] - positions[positions.length - 2]) / 2);
  return out;
}

/** An axis's grid in the chart's data coordinates: cell k spans [lo[k], hi[k]]. */
function cells(axis) {
  if (axis.scale === "categorical") return axis.values.map((_, k) => [k - 0.5, k + 0.5]);
  const positions = axis.scale === "log10" ? axis.values.map(Math.log10) : axis.values;
  if (positions.length < 2) return positions.map((p) => [p, p]);
  const e = edges(positions);
  const clip = (v) => Math.min(Math.max(v, positions[0]), positions[positions.length - 1]);
  const back = (v) => (axis.scale === "log10" ? 10 ** clip(v) : clip(v));
  return positions.map((_, k) => [back(e[k]), back(e[k + 1])]);
}

/**
 * The chart's option from the server's `grid`, with the completed trials of `rows` as
 * dots. Bands are coloured like the pair scatter (the best darkest).
 */
export function contourChart({ grid, points, rows, space, objective }) {
  const xs = cells(grid.x);
  const ys = cells(grid.y);
  const [lo, hi] = extent(grid.z.flat());
  const stops = scaleColors(objective);
  const band = (z) => (hi > lo ? Math.min(BANDS - 1, Math.floor(((z - lo) / (hi - lo)) * BANDS)) : BANDS - 1);
  // One rectangle per run of cells of one band along a row: far fewer shapes to draw.
  const data = [];
  grid.z.forEach((row, j) => {
    let start = null;
    row.forEach((z, i) => {
      const b = z === null ? null : band(z);
      const next = i + 1 < row.length && row[i + 1] !== null ? band(row[i + 1]) : null;
      if (b === null) return;
      if (start === null) start = i;
      if (next !== b) {
        data.push([xs[start][0], xs[i][1], ys[j][0], ys[j][1], b]);
        start = null;
      }
    });
  });
  const [x, y] = [grid.x.name, grid.y.name];
  const dots = rows
    .filter((i) => points.status[i] === "completed" && points.value[i] !== null)
    .map((i) => [xValue(space[x], points.params[x][i]), xValue(space[y], points.params[y][i]), i]);
  const yAxis = paramAxis(y, space[y]);
  yAxis.nameGap = 48;
  return {
    animation: false,
    grid: { left: 64, right: 90, top: 30, bottom: 44 },
    tooltip: { trigger: "item", confine: true },
    xAxis: { ...paramAxis(x, space[x]), z: 5 },
    yAxis: { ...yAxis, z: 5 },
    visualMap: [objectiveColors(grid.z.flat(), objective)],
    series: [
      {
        id: "contour",
        name: "interpolated",
        type: "custom",
        silent: true,
        data,
        dimensions: ["x0", "x1", "y0", "y1", "band"],
        encode: { x: [0, 1], y: [2, 3] },
        clip: true,
        renderItem: (params, api) => {
          const a = api.coord([api.value(0), api.value(2)]);
          const b = api.coord([api.value(1), api.value(3)]);
          return {
            type: "rect",
            shape: { x: Math.min(a[0], b[0]), y: Math.min(a[1], b[1]), width: Math.abs(b[0] - a[0]) + 0.6, height: Math.abs(b[1] - a[1]) + 0.6 },
            style: { fill: colorAt(stops, (api.value(4) + 0.5) / BANDS) },
          };
        },
      },
      {
        ...trialScatter({ id: "trials:contour", name: "completed", points: dots, large: dots.length > LARGE, size: 4, opacity: 0.7, color: "#ffffff" }),
        itemStyle: { color: "rgba(255,255,255,0.7)", borderColor: "#1d2430", borderWidth: 0.5 },
        silent: true,
      },
    ],
  };
}
