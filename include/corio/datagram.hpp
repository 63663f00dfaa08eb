// UDP: asyncio's create_datagram_endpoint, as an object you await on.
//
//   auto ep = co_await corio::create_datagram_endpoint({.local_addr = {"127.0.0.1", 0}});
//   auto [data, addr] = co_await ep.recvfrom();
//   co_await ep.sendto(data, addr);
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "corio/coro.hpp"
#include "corio/socket.hpp"

namespace corio {

struct DatagramOptions {
    SocketAddress local_addr{};   // bind here (family unset: an ephemeral port on the remote's family)
    SocketAddress remote_addr{};  // connect here (family unset: unconnected)
    bool reuse_port = false;
};

namespace detail {
struct DatagramState;
}

class DatagramEndpoint {
public:
    DatagramEndpoint() = default;
    explicit DatagramEndpoint(Socket s);
    DatagramEndpoint(DatagramEndpoint&&) noexcept = default;
    DatagramEndpoint& operator=(DatagramEndpoint&& other) noexcept;
    DatagramEndpoint(const DatagramEndpoint&) = delete;
    DatagramEndpoint& operator=(const DatagramEndpoint&) = delete;
    ~DatagramEndpoint() { close(); }

    // One datagram and who sent it; a longer one is truncated to max_size (asyncio's 256 KiB:
    // a Unix datagram may be longer than UDP's 64 KiB).
    Coro<std::pair<std::string, SocketAddress>> recvfrom(std::size_t max_size = 256 * 1024);
    // On a connected endpoint, only to its peer (std::invalid_argument otherwise).
    Coro<> sendto(std::string data, SocketAddress address);
    // For an endpoint made with a remote_addr.
    Coro<> send(std::string data);
    SocketAddress getsockname() const;
    void close() noexcept;
    Coro<> aclose();

private:
    // Shared with the operations made on it, which take the fd when they run and see a close()
    // that comes while they wait (the fd number may belong to another socket by then).
    std::shared_ptr<detail::DatagramState> state_;
};

Coro<DatagramEndpoint> create_datagram_endpoint(DatagramOptions options);

}  // namespace corio
