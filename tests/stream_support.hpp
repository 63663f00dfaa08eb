// Helpers of the stream suites: servers and connections on loopback, and both ends of one
// connection as streams, driven directly by the test.
#pragma once

#include <corio/server.hpp>
#include <corio/socket.hpp>
#include <corio/streams.hpp>

#include <cstdint>
#include <string>
#include <utility>

#include "net_support.hpp"

namespace corio_test {

using namespace corio;

inline Coro<> echo_handler(StreamReader reader, StreamWriter writer) {
    for (;;) {
        std::string data = co_await reader.read(65536);
        if (data.empty()) break;
        writer.write(data);
        co_await writer.drain();
    }
}

inline Coro<> line_handler(StreamReader reader, StreamWriter writer) {
    while (true) {
        std::string line = co_await reader.readline();
        if (line.empty()) break;
        writer.write("echo: " + line);
        co_await writer.drain();
    }
}

inline std::uint16_t port_of(const Server& s) { return s.sockets()[0].getsockname().port(); }

// Plain functions (not coroutines) that build the Coro: the temporaries they need (the host
// string, the std::function) live and die inside the call, never inside a co_await operand.
template <class H>
inline Coro<Server> serve_local(const H& handler, ServerOptions options = {}) {
    return start_server(handler, "127.0.0.1", 0, options);
}
inline Coro<StreamPair> connect_local(std::uint16_t port, ConnectOptions options = {}) {
    return open_connection("127.0.0.1", port, options);
}

// Both ends of one loopback TCP connection as streams: `client` from open_connection, `server`
// from the accepted socket. No handler in between, so the test drives both sides directly.
struct StreamLink {
    StreamPair client;
    StreamPair server;
};

inline Coro<StreamLink> stream_link(std::size_t client_limit = default_stream_limit,
                             std::size_t server_limit = default_stream_limit) {
    Socket listener = Socket::create(AF_INET, SOCK_STREAM);
    listener.bind(SocketAddress("127.0.0.1", 0));
    listener.listen();
    std::uint16_t port = listener.getsockname().port();
    Coro<StreamPair> connecting = open_connection("127.0.0.1", port, ConnectOptions{.limit = client_limit});
    StreamPair client = co_await std::move(connecting);
    Coro<std::pair<Socket, SocketAddress>> accepting = sock_accept(listener);
    std::pair<Socket, SocketAddress> accepted = co_await std::move(accepting);
    StreamLink link{std::move(client), make_streams(std::move(accepted.first), server_limit)};
    co_return link;
}

inline Coro<> close_link(StreamLink link) {
    link.client.second.close();
    link.server.second.close();
    Coro<> a = link.client.second.wait_closed();
    co_await std::move(a);
    Coro<> b = link.server.second.wait_closed();
    co_await std::move(b);
}

}  // namespace corio_test
