#include "support/ports.h"

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

namespace regcache::test {

int free_port() {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0), 1);
  int port = socket.address().port();
  socket.close();
  return port;
}

}  // namespace regcache::test
