// asyncio.start_server / start_unix_server and the Server they return.
//
//   auto server = co_await corio::start_server(handle_client, "127.0.0.1", 0);
//   std::uint16_t port = server.sockets()[0].getsockname().port();
//   co_await server.serve_forever();
//
// Each accepted connection runs handle_client(reader, writer) in a task of its own; when the
// handler returns (or fails: the failure goes to the loop's exception handler) its connection
// is closed. close() stops accepting; wait_closed() waits until every handler has finished and
// what it wrote has been sent (its connection closed).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <source_location>
#include <string>
#include <vector>

#include "corio/coro.hpp"
#include "corio/socket.hpp"
#include "corio/streams.hpp"

namespace corio {

struct ServerOptions {
    int backlog = 100;
    bool reuse_address = true;
    bool reuse_port = false;  // several loops (threads) can each serve the same port
    bool nodelay = true;
    std::size_t limit = default_stream_limit;
};

using ClientHandler = std::function<Coro<>(StreamReader, StreamWriter)>;

namespace detail {
struct ServerState;
}

class Server {
public:
    Server() = default;
    explicit Server(std::shared_ptr<detail::ServerState> s) : s_(std::move(s)) {}

    // The listening sockets (empty once closed).
    const std::vector<Socket>& sockets() const;
    bool is_serving() const noexcept;
    // Stops accepting and closes the listening sockets; handlers already running go on.
    void close();
    // Closes the connections of the handlers still running, once what is buffered is sent: their
    // reads see the end of the stream (asyncio 3.13's close_clients).
    void close_clients();
    // Cancels the handlers still running: each gets CancelledError where it waits, and can say
    // goodbye before its connection closes (no asyncio equivalent).
    void cancel_clients();
    // Aborts every connection (StreamWriter::abort()): what is buffered is dropped, and it
    // closes now (asyncio 3.13's abort_clients).
    void abort_clients();
    // Waits until the server is closed, every handler has finished and every connection closed.
    Coro<> wait_closed();
    // Serves until the server is closed; cancelling it closes the server.
    Coro<> serve_forever();
    Coro<> aclose();  // close() + wait_closed(): for async_with
    // Connections not closed yet (a handler still running, or its last bytes still leaving).
    std::size_t active_connections() const noexcept;

private:
    std::shared_ptr<detail::ServerState> s_;
};

// `where`: the handlers' tasks count as created here (debug reports, corio-ps).
Coro<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port, ServerOptions options = {},
                          std::source_location where = std::source_location::current());
Coro<Server> start_unix_server(ClientHandler handler, std::string path, ServerOptions options = {},
                               std::source_location where = std::source_location::current());

}  // namespace corio
