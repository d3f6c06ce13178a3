"""Pure building blocks: settings, errors, validation, tokens. No framework or I/O imports."""
