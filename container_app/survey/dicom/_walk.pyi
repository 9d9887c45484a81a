from collections.abc import Mapping

def walk(data: bytes | bytearray, base: int, pos: int, stop: int, wanted: Mapping[int, str],
         values: dict[int, bytes], implicit: bool, skip_sequences: bool = True, /) -> tuple[int, bool]: ...

def ascii_first_values(raw: dict[int, bytes], ascii_keywords: Mapping[int, str], text_keywords: Mapping[int, str],
                       values: dict[str, str], /) -> list[int]: ...
