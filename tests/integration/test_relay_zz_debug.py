import pytest, time, subprocess, threading
from smarthost import *  # noqa
from smarthost import smarthosts  # noqa

def test_dbg(smarthosts, authrelay):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    n = 5000000 // 80
    filler = b"".join(b"X-Filler-%06d: %s\r\n" % (i, b"f" * 60) for i in range(n))
    msg = b"Subject: x\r\n\r\n" + filler
    begin(c)
    def snap():
        time.sleep(3)
        print("smarthost got", [len(t.data_raw) for t in sh.all_transactions()])
        out = subprocess.run(["gdb", "-p", str(d.pid), "-batch", "-ex", "thread 3", "-ex", "break relay_data_full", "-ex", "continue", "-ex", "print *r", "-ex", "print *r->conn", "-ex", "print *s" ,"-ex", "bt"], capture_output=True, text=True)
        print(out.stdout[-5000:], out.stderr[-2000:])
    th = threading.Thread(target=snap); th.start()
    try:
        c.sock.settimeout(6)
        c.sock.sendall(msg + b".\r\n")
    except Exception as e:
        print("send failed", e)
    th.join()
    assert 0
