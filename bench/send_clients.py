"""Where the client's CPU per Mail Send request goes: the same pre-encoded 17.7 KB bodies posted
to the local SendGrid (its own process) by different HTTP clients, 16 requests in flight.

    .venv/bin/python bench/send_clients.py CLIENT [MESSAGES]

CLIENT: transport (Lojal's Transport as it is), httpx-threads (the former transport: one
httpx.Client in 16 threads), async (httpx.AsyncClient), httpcore (its async pool),
urllib3 (a pool in 16 threads), httpclient (http.client, one connection per thread), h11 (h11 on
asyncio streams), raw (bytes on asyncio streams, no parsing: a lower bound). Prints msg/s and CPU
ms per message in this process and in the local SendGrid. Body encoding is not timed here.
"""
import asyncio, json, os, subprocess, sys, time, re, socket
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import httpx
import lojal.delivery  # noqa: F401 (import order)
from send import start, messages, KEY
from lojal.config import Tracking
from lojal.sendgrid.payload import mail_send_body

N = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
which = sys.argv[1]
proc, m = start(["sendgrid-local", "--port", "0", "--api-key", KEY, "--no-keep-bodies"], pattern=r"listening on (http://\S+)")
url = m.group(1)
bodies = [json.dumps(mail_send_body(x, Tracking()), ensure_ascii=False, separators=(",", ":")).encode() for x in messages(N, 16)]
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")",1)[1].split(); return (int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK")
s0 = cpu(proc.pid); t0 = time.perf_counter(); c0 = time.process_time()
if which == "httpx-threads":  # the former transport: one httpx.Client shared by 16 threads
    from concurrent.futures import ThreadPoolExecutor
    client = httpx.Client(headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                          limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
                          transport=httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]))
    u = httpx.URL(url + "/v3/mail/send")
    with ThreadPoolExecutor(16) as ex:
        for i in range(0, N, 256): list(ex.map(lambda b: client.post(u, content=b).status_code, bodies[i:i+256]))
    client.close()
elif which == "transport":  # Lojal's Transport as it is now
    from lojal.sendgrid.transport import Transport
    t = Transport(url, KEY, concurrency=16)
    for i in range(0, N, 256): t.post_many(bodies[i:i+256])
    t.close()
elif which == "async":
    async def main():
        sem = asyncio.Semaphore(16)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}, limits=httpx.Limits(max_connections=16)) as c:
            u = httpx.URL(url + "/v3/mail/send")
            async def one(b):
                async with sem:
                    r = await c.post(u, content=b); return r.status_code
            for i in range(0, N, 256):
                await asyncio.gather(*(one(b) for b in bodies[i:i+256]))
    asyncio.run(main())
elif which == "httpcore":
    import httpcore
    async def main():
        sem = asyncio.Semaphore(16)
        async with httpcore.AsyncConnectionPool(max_connections=16) as pool:
            hdr = [(b"Authorization", f"Bearer {KEY}".encode()), (b"Content-Type", b"application/json")]
            u = (url + "/v3/mail/send").encode()
            async def one(b):
                async with sem:
                    r = await pool.request(b"POST", u, headers=hdr + [(b"Content-Length", str(len(b)).encode())], content=b); return r.status
            for i in range(0, N, 256):
                await asyncio.gather(*(one(b) for b in bodies[i:i+256]))
    asyncio.run(main())
elif which == "urllib3":
    import urllib3
    from concurrent.futures import ThreadPoolExecutor
    pool = urllib3.HTTPConnectionPool("127.0.0.1", int(url.rsplit(":",1)[1]), maxsize=16, block=True)
    hdr = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    def one(b): return pool.urlopen("POST", "/v3/mail/send", body=b, headers=hdr, retries=False).status
    with ThreadPoolExecutor(16) as ex:
        for i in range(0, N, 256): list(ex.map(one, bodies[i:i+256]))
elif which == "raw":
    # raw asyncio streams, minimal HTTP/1.1
    host, port = "127.0.0.1", int(url.rsplit(":",1)[1])
    async def main():
        q = asyncio.Queue()
        for b in bodies: q.put_nowait(b)
        async def worker():
            r, w = await asyncio.open_connection(host, port)
            while not q.empty():
                b = q.get_nowait()
                w.write(b"POST /v3/mail/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b)
                head = await r.readuntil(b"\r\n\r\n")
                ln = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                if ln: await r.readexactly(ln)
            w.close()
        await asyncio.gather(*(worker() for _ in range(16)))
    asyncio.run(main())
elif which == "httpclient":
    import http.client, threading
    from concurrent.futures import ThreadPoolExecutor
    host, port = "127.0.0.1", int(url.rsplit(":",1)[1])
    local = threading.local()
    hdr = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    def one(b):
        conn = getattr(local, "c", None)
        if conn is None:
            conn = local.c = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("POST", "/v3/mail/send", body=b, headers=hdr)
        r = conn.getresponse(); r.read(); return r.status
    with ThreadPoolExecutor(16) as ex:
        for i in range(0, N, 256): list(ex.map(one, bodies[i:i+256]))
elif which == "h11":
    import h11
    host, port = "127.0.0.1", int(url.rsplit(":",1)[1])
    async def main():
        q = asyncio.Queue()
        for b in bodies: q.put_nowait(b)
        async def worker():
            r, w = await asyncio.open_connection(host, port)
            conn = h11.Connection(h11.CLIENT)
            while not q.empty():
                b = q.get_nowait()
                w.write(conn.send(h11.Request(method="POST", target="/v3/mail/send", headers=[("Host","x"),("Authorization","Bearer "+KEY),("Content-Type","application/json"),("Content-Length",str(len(b)))])))
                w.write(conn.send(h11.Data(data=b))); w.write(conn.send(h11.EndOfMessage()))
                await w.drain()
                while True:
                    ev = conn.next_event()
                    if ev is h11.NEED_DATA:
                        conn.receive_data(await r.read(65536)); continue
                    if isinstance(ev, h11.EndOfMessage): break
                conn.start_next_cycle()
            w.close()
        await asyncio.gather(*(worker() for _ in range(16)))
    asyncio.run(main())
dt = time.perf_counter() - t0; cc = time.process_time() - c0; sc = cpu(proc.pid) - s0
st = httpx.get(url + "/_local/stats").json()
proc.terminate()
print(f"{which}: {N/dt:.0f} msg/s client {cc/N*1000:.3f} ms server {sc/N*1000:.3f} ms accepted {st['accepted']} load {os.getloadavg()[0]:.2f}")

