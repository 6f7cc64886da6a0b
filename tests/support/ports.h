#pragma once
// Ports for servers the tests start. All servers listen on 127.0.0.1 only.

namespace regcache::test {

// A port that was free on 127.0.0.1 a moment ago: binds port 0, reads the port the
// kernel chose, closes. Another process could take it before our server binds it;
// servers that start from a port number accept that (small) race.
int free_port();

}  // namespace regcache::test
