/** Characters as Postgres' char_length counts them (code points, so an emoji is one). */
export const characterCount = (s: string) => [...s].length;

/** What a username may be: 3–32 of A–Z a–z 0–9 _ . - (config checks ADMIN_USERNAME against it too). */
export const USERNAME_PATTERN = /^[A-Za-z0-9_.-]{3,32}$/;
