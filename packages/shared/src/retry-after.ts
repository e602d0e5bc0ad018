/**
 * Parses an HTTP Retry-After value into the wait in milliseconds from
 * `now`. It accepts delay-seconds ("120") and the three HTTP-date forms of
 * RFC 9110 section 5.6.7: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"),
 * the obsolete RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT") and the
 * asctime form ("Sun Nov  6 08:49:37 1994"). A negative delay or a date in
 * the past gives 0. Returns null for a missing value and for anything else
 * (fractions, other date formats, impossible dates, overflow), so the
 * caller falls back to its own backoff.
 */
export function parseRetryAfter(
  value: string | null,
  now: Date,
): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (text === "") return null;

  if (/^-?\d+$/.test(text)) {
    const ms = Number(text) * 1000;
    if (!Number.isSafeInteger(ms)) return null;
    return Math.max(0, ms);
  }

  const dateMs = parseHttpDate(text, now);
  if (dateMs === null) return null;
  return Math.max(0, dateMs - now.getTime());
}

const MONTHS = [
  "Jan", "Feb", "Mar", "Apr", "May", "Jun",
  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const SHORT_DAYS = "(Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const LONG_DAYS =
  "(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)";
const MONTH = `(${MONTHS.join("|")})`;
const TIME = "(\\d{2}):(\\d{2}):(\\d{2})";

const IMF_FIXDATE = new RegExp(
  `^${SHORT_DAYS}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`,
);
const RFC850_DATE = new RegExp(
  `^${LONG_DAYS}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`,
);
const ASCTIME_DATE = new RegExp(
  `^${SHORT_DAYS} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`,
);

/** Returns the epoch milliseconds of an HTTP-date, or null. */
function parseHttpDate(text: string, now: Date): number | null {
  let match = IMF_FIXDATE.exec(text);
  if (match) {
    const [, , day, month, year, hour, minute, second] = match;
    return buildUtc(year, month, day, hour, minute, second);
  }

  match = RFC850_DATE.exec(text);
  if (match) {
    const [, , day, month, shortYear, hour, minute, second] = match;
    const year = expandTwoDigitYear(Number(shortYear), now);
    return buildUtc(String(year), month, day, hour, minute, second);
  }

  match = ASCTIME_DATE.exec(text);
  if (match) {
    const [, , month, day, hour, minute, second, year] = match;
    return buildUtc(year, month, day?.trim(), hour, minute, second);
  }
  return null;
}

// RFC 9110: a two-digit year that would be more than 50 years in the
// future means the most recent past year with the same last two digits.
function expandTwoDigitYear(shortYear: number, now: Date): number {
  const currentYear = now.getUTCFullYear();
  let year = currentYear - (currentYear % 100) + shortYear;
  if (year > currentYear + 50) year -= 100;
  return year;
}

function buildUtc(
  ...parts: (string | undefined)[]
): number | null {
  const [yearText, monthName, dayText, hourText, minuteText, secondText] =
    parts;
  const monthIndex = MONTHS.indexOf(monthName ?? "");
  const [year, day, hour, minute, second] = [
    yearText, dayText, hourText, minuteText, secondText,
  ].map(Number) as [number, number, number, number, number];
  // A leap second (60) is read as the last second of the minute.
  if (hour > 23 || minute > 59 || second > 60) return null;

  const ms = Date.UTC(
    year,
    monthIndex,
    day,
    hour,
    minute,
    Math.min(second, 59),
  );
  const date = new Date(ms);
  // Date.UTC rolls impossible dates over (31 Feb becomes 3 Mar): reject.
  if (date.getUTCDate() !== day || date.getUTCMonth() !== monthIndex) {
    return null;
  }
  return ms;
}
