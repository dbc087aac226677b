// A uPlot chart sized to its container. uPlot draws on a canvas and positions with element.style
// (CSSOM), which the Content-Security-Policy allows; its stylesheet is bundled.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './html.js';

export interface ChartProps {
  /** x: seconds since the epoch; then one array a series. */
  data: uPlot.AlignedData;
  series: { label: string; color: string }[];
  /** Value → axis/legend text. */
  format: (v: number) => string;
  height?: number;
  /** When given, dragging across the chart selects a range [from, to] in seconds. */
  onSelect?: (from: number, to: number) => void;
  label: string;
  /** A fixed x range in seconds (the last hour), else the data's. */
  xRange?: () => [number, number];
}

const PALETTE = ['#1d6fd6', '#d65f1d', '#2a9d4b', '#9b3fc4', '#c4a43f', '#3fb8c4'];
export const color = (i: number): string => PALETTE[i % PALETTE.length]!;

/** Axis ticks and the legend in UTC, as every other time in the console; as precise as the ticks' spacing needs. */
const utcTick = (v: number, incr: number, span: number) => {
  const iso = new Date(v * 1000).toISOString();
  if (incr >= 86400) return iso.slice(5, 10);
  if (incr < 60) return iso.slice(11, 19);
  return span > 86400 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
};
const utcFull = (v: number) => `${new Date(v * 1000).toISOString().slice(0, 19).replace('T', ' ')} UTC`;

export function Chart({ data, series, format, height = 180, onSelect, label, xRange }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const select = useRef(onSelect);
  select.current = onSelect;
  const range = useRef(xRange);
  range.current = xRange;
  const shape = series.map((s) => s.label).join('\0');

  useEffect(() => {
    const el = box.current!;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      scales: { x: { time: true, range: (u, min, max) => range.current?.() ?? [min, max] } },
      series: [{ value: (_u, v) => (v == null ? '–' : utcFull(v)) }, ...series.map((s) => ({ label: s.label, stroke: s.color, fill: `${s.color}22`, width: 1.5, value: (_u: uPlot, v: number | null) => (v == null ? '–' : format(v)) }))],
      axes: [
        {
          values: (u, vals, _axis, _space, incr) => vals.map((v) => utcTick(v, incr, (u.scales.x!.max ?? 0) - (u.scales.x!.min ?? 0))),
          space: 90,
        },
        { values: (_u, vals) => vals.map((v) => format(v)), size: 96 },
      ],
      cursor: { drag: { x: Boolean(onSelect), y: false, setScale: false } },
      hooks: {
        setSelect: [
          (u) => {
            if (!select.current || u.select.width < 2) return;
            select.current(u.posToVal(u.select.left, 'x'), u.posToVal(u.select.left + u.select.width, 'x'));
          },
        ],
      },
    };
    plot.current = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // Rebuilt only when the series change; new data goes through setData below.
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return html`<div class="chart" role="img" aria-label=${label} ref=${box}></div>`;
}
