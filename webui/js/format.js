// Number formatting for tables, charts and forms.

const binary = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  let i = 0;
  while (Math.abs(n) >= 1024 && i < binary.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 || n >= 100 ? 0 : 1)} ${binary[i]}`;
}

// bitsPerSecond formats a byte rate as the bit rate network people read.
export function bitsPerSecond(bytesPerSecond) {
  if (bytesPerSecond === null || bytesPerSecond === undefined) return '–';
  let n = bytesPerSecond * 8;
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i === 0 || n >= 100 ? 0 : 1)} ${units[i]}`;
}

export function percent(n) {
  return n === null || n === undefined ? '–' : `${n.toFixed(1)} %`;
}

export function duration(seconds) {
  if (seconds < 0 || !Number.isFinite(seconds)) return '–';
  const d = Math.floor(seconds / 86400);
  const hh = Math.floor((seconds % 86400) / 3600);
  const mm = Math.floor((seconds % 3600) / 60);
  const ss = Math.floor(seconds % 60);
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

// uptime of a chute from its started_at, or '–' when not running.
export function uptime(chute) {
  if (chute.state !== 'running' || !chute.started_at) return '–';
  return duration((Date.now() - Date.parse(chute.started_at)) / 1000);
}

export function clock(iso) {
  return new Date(iso).toLocaleTimeString();
}

// quantity writes a byte count as the daemon's quantities read it back
// (the largest binary suffix that divides it exactly: 256Mi), and rate a
// bit rate likewise (20Mbit): the form a developer's quota is edited in.
export function quantity(n) {
  for (const [unit, suffix] of [[2 ** 40, 'Ti'], [2 ** 30, 'Gi'], [2 ** 20, 'Mi'], [2 ** 10, 'Ki']]) {
    if (n && n % unit === 0) return `${n / unit}${suffix}`;
  }
  return String(n || 0);
}

export function rate(n) {
  for (const [unit, prefix] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (n && n % unit === 0) return `${n / unit}${prefix}bit`;
  }
  return n ? `${n}bit` : '0';
}
