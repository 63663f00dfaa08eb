// Streams: asyncio's high-level TCP and Unix-socket API.
//
//   auto [reader, writer] = co_await corio::open_connection("127.0.0.1", 8888);
//   writer.write("hello\n"); co_await writer.drain();
//   std::string line = co_await reader.readline();
//   writer.close(); co_await writer.wait_closed();
//
//   auto server = co_await corio::start_server(handle_client, "127.0.0.1", 8888);
//   co_await server.serve_forever();
//
// A reader and its writer share one connection. Bytes are read into the reader's buffer, so a
// cancelled read loses nothing: the next read sees the bytes. write() never blocks: it sends
// what the socket takes at once (or, while unread input is buffered, by the end of the loop's
// turn, together with the next write) and buffers the rest; drain() waits while more than the
// high water mark is buffered (backpressure).
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "corio/coro.hpp"
#include "corio/socket.hpp"

namespace corio {

// readexactly() or readuntil() met the end of the stream first.
class IncompleteReadError : public std::runtime_error {
public:
    IncompleteReadError(std::string partial, std::optional<std::size_t> expected);
    std::string partial;
    std::optional<std::size_t> expected;
};

// readuntil()/readline() found no separator within the buffer limit.
class LimitOverrunError : public std::runtime_error {
public:
    LimitOverrunError(const std::string& message, std::size_t consumed)
        : std::runtime_error(message), consumed(consumed) {}
    std::size_t consumed;
};

inline constexpr std::size_t default_stream_limit = 64 * 1024;

class StreamWriter;
namespace detail {
class StreamTransport;
// Server::close_clients(): closes the connection on its handler's behalf (StreamTransport::close_as_lost).
void close_as_lost(StreamWriter& writer);
}

class StreamReader {
public:
    StreamReader() = default;
    explicit StreamReader(std::shared_ptr<detail::StreamTransport> t) : t_(std::move(t)) {}
    explicit operator bool() const noexcept { return bool(t_); }  // connected to something

    // Up to n bytes once any are available; n < 0 reads to the end; "" at the end.
    Coro<std::string> read(long n = -1);
    // corio's zero-copy form of read(n) (like a socket's recv_into): up to buffer.size() bytes
    // into the caller's memory, 0 at the end. With nothing buffered the kernel writes straight
    // into `buffer`; a cancelled call loses no bytes (they stay buffered for the next read).
    Coro<std::size_t> read_into(std::span<char> buffer);
    // A line with its "\n", or what is left at the end ("" when nothing is).
    Coro<std::string> readline();
    // Exactly n bytes, or IncompleteReadError.
    Coro<std::string> readexactly(std::size_t n);
    // Up to and including `separator`; IncompleteReadError at the end, LimitOverrunError past
    // the limit (the buffer is left intact).
    Coro<std::string> readuntil(std::string separator = "\n");
    // The end was reached and the buffer is empty (false after an error, as in asyncio).
    bool at_eof() const noexcept;
    // The OS error a read met (ECONNRESET...): every later read throws it again. Null if none.
    std::exception_ptr exception() const noexcept;
    std::size_t limit() const noexcept;

private:
    std::shared_ptr<detail::StreamTransport> t_;
};

class StreamWriter {
public:
    StreamWriter() = default;
    explicit StreamWriter(std::shared_ptr<detail::StreamTransport> t) : t_(std::move(t)) {}
    explicit operator bool() const noexcept { return bool(t_); }  // connected to something

    void write(std::string_view data);
    void writelines(const std::vector<std::string>& lines);
    // Waits while more than the high water mark is buffered; throws the connection's error.
    Coro<> drain();
    // Half-close: no more writes, the peer reads EOF once the buffer is flushed.
    void write_eof();
    bool can_write_eof() const noexcept { return true; }
    // Closes the connection once what is buffered has been sent.
    void close();
    // Closes it now: what is buffered is dropped (the kernel still sends what it took), later
    // writes are dropped and drain() throws ECONNRESET, as after a lost connection. asyncio:
    // writer.transport.abort(). std::logic_error off the stream's loop.
    void abort();
    bool is_closing() const noexcept;
    Coro<> wait_closed();
    Coro<> aclose();  // close() + wait_closed(), for async_with
    // "peername" or "sockname".
    std::optional<SocketAddress> get_extra_info(std::string_view name) const;
    void set_write_buffer_limits(std::size_t high, std::optional<std::size_t> low = std::nullopt);
    std::size_t get_write_buffer_size() const noexcept;

private:
    friend void detail::close_as_lost(StreamWriter& writer);
    std::shared_ptr<detail::StreamTransport> t_;
};

using StreamPair = std::pair<StreamReader, StreamWriter>;

struct ConnectOptions {
    std::size_t limit = default_stream_limit;
    bool nodelay = true;
};

// Connects to host:port (names resolved off the loop thread; each address tried in turn).
Coro<StreamPair> open_connection(std::string host, std::uint16_t port, ConnectOptions options = {});
Coro<StreamPair> open_unix_connection(std::string path, ConnectOptions options = {});
// A reader/writer pair over an already connected socket (or pipe: it need not be a socket),
// bound to the running loop (std::logic_error when none runs; using it from another loop too).
StreamPair make_streams(Socket socket, std::size_t limit = default_stream_limit);

namespace detail {
// The stream pair for a pipe or any non-socket fd (subprocess pipes). Takes the fd: it is
// closed even if this throws.
std::shared_ptr<StreamTransport> make_fd_transport(int fd, bool is_socket, std::size_t limit);
}  // namespace detail

}  // namespace corio
