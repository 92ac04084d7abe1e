// Types for the QR encoder vendored inside qrcode-terminal (Kazuhiko Arase's
// MIT QRCode for JavaScript), which the CLI already depends on.
declare module 'qrcode-terminal/vendor/QRCode/index.js' {
  class QRCode {
    constructor(typeNumber: number, errorCorrectLevel: number);
    addData(data: string): void;
    make(): void;
    getModuleCount(): number;
    isDark(row: number, col: number): boolean;
  }
  export default QRCode;
}
declare module 'qrcode-terminal/vendor/QRCode/QRErrorCorrectLevel.js' {
  const levels: { readonly L: number; readonly M: number; readonly Q: number; readonly H: number };
  export default levels;
}
