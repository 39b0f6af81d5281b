"""A config parser named by text (``Config(parser="config_parsers.key_values")``):
``key = value`` lines, one a line; a line without '=' is an error."""


def key_values(text: str) -> dict[str, str]:
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"line {number} has no '='")
        values[key.strip()] = value.strip()
    return values
