"""The size of each file a dry run would download: the only module that opens a URL for it.

pip's installation report names each file's URL but not its size, so the size is read from the
index file itself: an HTTP(S) ``HEAD`` request (``Content-Length``), or ``os.stat`` for a
``file://`` URL (find-links folders, local mirrors). The lookups run concurrently on a small
thread pool under one total deadline; a size that cannot be had in time, or at all (an index
that refuses HEAD, needs credentials, sends no length), is unknown (None), never a failure: the
install itself does not depend on it.

The network is reached the way pip reaches it: the proxy of the environment (``https_proxy``,
``no_proxy``; ``urllib.request.getproxies``) unless pip's own ``proxy`` setting names one, and
pip's ``cert`` / ``client-cert`` settings when given (``Network``, read from pip's configuration
by ``repair.indexconfig``). Redirects are followed as HEAD requests: urllib's own redirect
handler turns a redirected HEAD into a GET, which for a CUDA wheel would start a 2.5 GB download.
"""

from __future__ import annotations

import http.client
import os
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

# At most this many lookups at once (a torch install lists ~20 files on one host).
WORKERS = 8
# Per request, and for all of them together: sizes are a courtesy before the install, which
# would wait for a slow index anyway.
REQUEST_TIMEOUT = 5.0
DEADLINE = 10.0


class _HeadRedirect(urllib.request.HTTPRedirectHandler):
    """Follow a redirect with HEAD again (the stock handler follows it with GET)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and req.get_method() == "HEAD":
            new.method = "HEAD"
        return new


@dataclass(frozen=True, slots=True)
class Network:
    """pip's transport settings (``--proxy``, ``--cert``, ``--client-cert``); None: the
    defaults (the environment's proxy, the system's CA bundle)."""

    proxy: str | None = None
    cert: str | None = None
    client_cert: str | None = None


def _opener(network: Network) -> urllib.request.OpenerDirector:
    """An opener for ``network``; OSError/ssl.SSLError when a certificate file is unusable."""
    proxies = None
    if network.proxy:
        proxies = {"http": network.proxy, "https": network.proxy}
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler(proxies),
        _HeadRedirect(),
    ]
    if network.cert or network.client_cert:
        ctx = ssl.create_default_context(cafile=network.cert)
        if network.client_cert:  # pip's client-cert: one PEM with the key and the certificate
            ctx.load_cert_chain(network.client_cert)
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    return urllib.request.build_opener(*handlers)


_OPENER = _opener(Network())


def size_of(
    url: str,
    *,
    timeout: float = REQUEST_TIMEOUT,
    opener: urllib.request.OpenerDirector | None = None,
) -> int | None:
    """The size in bytes of the file at ``url``, or None when it cannot be had."""
    parts = urllib.parse.urlsplit(url)
    try:
        if parts.scheme == "file":
            return os.stat(urllib.request.url2pathname(parts.path)).st_size
        if parts.scheme not in ("http", "https"):
            return None
        # the fragment (#sha256=...) is the index's, not part of the request
        req = urllib.request.Request(urllib.parse.urldefrag(url).url, method="HEAD")
        req.add_header("Accept-Encoding", "identity")  # the length of the file, not of a gzip
        with (opener or _OPENER).open(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
        size = int(length) if length is not None else None
        return size if size is not None and size >= 0 else None
    except (OSError, ValueError, http.client.HTTPException):
        # URLError and HTTPError (4xx/5xx: HEAD refused, credentials needed) are OSErrors;
        # a malformed answer is an HTTPException: all of them mean "unknown"
        return None


def sizes(
    urls: Iterable[str], *, deadline: float = DEADLINE, network: Network | None = None
) -> dict[str, int | None]:
    """url -> size for every URL (None: unknown), within ``deadline`` seconds in all, reached
    through ``network`` (None: the defaults)."""
    todo = list(dict.fromkeys(urls))
    out: dict[str, int | None] = dict.fromkeys(todo)
    if not todo:
        return out
    try:
        opener = _OPENER if network is None or network == Network() else _opener(network)
    except (OSError, ValueError):  # ssl.SSLError is an OSError: an unusable certificate file
        return out
    end = time.monotonic() + deadline
    pool = ThreadPoolExecutor(max_workers=min(WORKERS, len(todo)), thread_name_prefix="qfix-size")
    try:
        futures = {
            pool.submit(size_of, u, timeout=min(REQUEST_TIMEOUT, deadline), opener=opener): u
            for u in todo
        }
        done, _late = wait(futures, timeout=max(0.0, end - time.monotonic()))
        for fut in done:
            out[futures[fut]] = fut.result()
    finally:
        # a late lookup is left to finish on its own (each has its own timeout); nobody waits
        pool.shutdown(wait=False, cancel_futures=True)
    return out
