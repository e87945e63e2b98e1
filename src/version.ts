/** The version of tfjs-karat. */
export const version = '0.1.0';
