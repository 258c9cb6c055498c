"""Decoding `Content-Encoding: aws-chunked` bodies as they arrive.

SigV4 streaming uploads frame the payload in chunks of their own, inside the HTTP body:
`<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n` ... `0[;...]\\r\\n`, then optional trailers
(`x-amz-checksum-crc32:<b64>\\r\\n`, `x-amz-trailer-signature:...\\r\\n`) and a blank line.
botocore sends them over HTTPS (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`), other SDKs also signed
(`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`). Signatures are not checked (Sabio has no auth yet)."""

from __future__ import annotations

from sabio.api.s3.errors import IncompleteBodyError, InvalidRequestError

_SIZE, _DATA, _DATA_END, _TRAILERS, _DONE = range(5)
_MAX_LINE = 8192


class AwsChunkedDecoder:
    def __init__(self) -> None:
        self._state = _SIZE
        self._remaining = 0
        self._line = bytearray()
        self.trailers: dict[str, str] = {}

    def feed(self, data: bytes) -> bytes:
        """The payload bytes contained in `data` (possibly none)."""
        out: list[bytes] = []
        position, size = 0, len(data)
        while position < size:
            if self._state == _DATA:
                take = min(self._remaining, size - position)
                out.append(data[position : position + take])
                position += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _DATA_END
                continue
            if self._state == _DONE:
                raise InvalidRequestError("Unexpected data after the end of an aws-chunked body.")
            end = data.find(b"\n", position)
            if end < 0:
                self._line += data[position:]
                if len(self._line) > _MAX_LINE:
                    raise InvalidRequestError("An aws-chunked chunk header is too long.")
                break
            self._line += data[position : end + 1]
            position = end + 1
            line = bytes(self._line).rstrip(b"\r\n")
            self._line.clear()
            self._on_line(line)
        return out[0] if len(out) == 1 else b"".join(out)

    def _on_line(self, line: bytes) -> None:
        if self._state == _SIZE:
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise InvalidRequestError(
                    f"Invalid aws-chunked chunk size {size_text[:32]!r}."
                ) from None
            if size < 0:
                raise InvalidRequestError("Invalid aws-chunked chunk size.")
            self._remaining = size
            self._state = _DATA if size else _TRAILERS
        elif self._state == _DATA_END:
            if line:
                raise InvalidRequestError("An aws-chunked chunk is longer than its size says.")
            self._state = _SIZE
        elif self._state == _TRAILERS:
            if not line:
                self._state = _DONE
                return
            name, sep, value = line.partition(b":")
            if not sep:
                raise InvalidRequestError("Malformed trailer in an aws-chunked body.")
            self.trailers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")

    def finish(self) -> dict[str, str]:
        """The trailers; fails unless the body ended exactly where its framing says."""
        if self._state == _TRAILERS and not self._line:
            self._state = _DONE  # some clients omit the final blank line
        if self._state != _DONE:
            raise IncompleteBodyError(
                "You did not provide the number of bytes specified by the framing of the "
                "aws-chunked body."
            )
        return self.trailers
