#include "corio/streams.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "corio/detail/byte_buffer.hpp"
#include "corio/detail/task_base.hpp"
#include "corio/loop.hpp"

#include "stream_transport.hpp"

namespace corio {

IncompleteReadError::IncompleteReadError(std::string p, std::optional<std::size_t> e)
    : std::runtime_error(std::to_string(p.size()) + " bytes read on a total of " +
                         (e ? std::to_string(*e) : std::string("None")) + " expected bytes"),
      partial(std::move(p)),
      expected(e) {}

namespace detail {

namespace {

// Every read starts here: on the stream's own loop, and not past an error (asyncio raises the
// reader's exception() from every read once it is set, bytes still buffered or not).
void check_readable(const StreamTransport& t) {
    t.check_loop();
    t.check_read_error();
}

Coro<std::string> read_some(std::shared_ptr<StreamTransport> t, long n) {
    check_readable(*t);
    if (n == 0) co_return std::string();
    if (n < 0) {
        while (!t->eof()) {
            Coro<> more = t->fill(t);
            co_await std::move(more);
        }
        co_return t->take_input(t->input().size());
    }
    if (t->input().empty() && !t->eof()) {
        Coro<> more = t->fill(t);
        co_await std::move(more);
    }
    co_return t->take_input(std::size_t(n));
}

Coro<std::string> read_until(std::shared_ptr<StreamTransport> t, std::string sep) {
    check_readable(*t);
    if (sep.empty()) throw std::invalid_argument("readuntil(): the separator must not be empty");
    std::size_t searched = 0;
    std::uint64_t consumed_when_searched = t->input().consumed();
    for (;;) {
        std::string_view buf = t->input().view();
        // Another task may take buffered bytes while this one waits (streams.md allows it): the
        // part searched already moved forward with the front, or left the buffer.
        const std::uint64_t moved = t->input().consumed() - consumed_when_searched;
        searched = moved < searched ? searched - std::size_t(moved) : 0;
        std::size_t from = searched > sep.size() ? searched - sep.size() + 1 : 0;
        std::size_t at = buf.find(sep, from);
        if (at != std::string_view::npos) {
            // asyncio's rule: too long only when the separator starts past the limit.
            if (at > t->limit()) throw LimitOverrunError("Separator is found, but chunk is longer than limit", at);
            co_return t->take_input(at + sep.size());
        }
        searched = buf.size();
        consumed_when_searched = t->input().consumed();
        if (buf.size() + 1 > t->limit() + sep.size())
            throw LimitOverrunError("Separator is not found, and chunk exceed the limit", buf.size() + 1 - sep.size());
        if (t->eof()) {
            std::string partial = t->take_input(buf.size());
            throw IncompleteReadError(std::move(partial), std::nullopt);
        }
        Coro<> more = t->fill(t);
        co_await std::move(more);
    }
}

Coro<std::string> read_line(std::shared_ptr<StreamTransport> t) {
    try {
        Coro<std::string> line = read_until(t, "\n");
        co_return co_await std::move(line);
    } catch (IncompleteReadError& e) {
        co_return std::move(e.partial);
    } catch (const LimitOverrunError&) {
        // asyncio's readline drops the overlong line (up to a separator, if there is one).
        std::string_view buf = t->input().view();
        std::size_t nl = buf.find('\n');
        t->consume_input(nl == std::string_view::npos ? buf.size() : nl + 1);
        throw;
    }
}

Coro<std::string> read_exactly(std::shared_ptr<StreamTransport> t, std::size_t n) {
    check_readable(*t);
    while (t->input().size() < n && !t->eof()) {
        Coro<> more = t->fill(t);
        co_await std::move(more);
    }
    if (t->input().size() < n) {
        std::string partial = t->take_input(t->input().size());
        throw IncompleteReadError(std::move(partial), n);
    }
    co_return t->take_input(n);
}

std::shared_ptr<StreamTransport> require(const std::shared_ptr<StreamTransport>& t) {
    if (!t)
        throw std::logic_error(
            "corio: this stream is not connected (a default-constructed or moved-from stream, or a subprocess pipe "
            "not asked for: set SubprocessOptions::in / out / err to corio::PIPE)");
    return t;
}

}  // namespace
}  // namespace detail

Coro<std::string> StreamReader::read(long n) { return detail::read_some(detail::require(t_), n); }
Coro<std::size_t> StreamReader::read_into(std::span<char> buffer) {
    auto t = detail::require(t_);
    return t->read_into(t, buffer.data(), buffer.size());
}
Coro<std::string> StreamReader::readline() { return detail::read_line(detail::require(t_)); }
Coro<std::string> StreamReader::readexactly(std::size_t n) { return detail::read_exactly(detail::require(t_), n); }
Coro<std::string> StreamReader::readuntil(std::string separator) {
    return detail::read_until(detail::require(t_), std::move(separator));
}
bool StreamReader::at_eof() const noexcept { return !t_ || t_->at_eof(); }
std::exception_ptr StreamReader::exception() const noexcept { return t_ ? t_->read_error() : nullptr; }
std::size_t StreamReader::limit() const noexcept { return t_ ? t_->limit() : default_stream_limit; }

void StreamWriter::write(std::string_view data) { detail::require(t_)->write(data); }
void StreamWriter::writelines(const std::vector<std::string>& lines) {
    for (const auto& l : lines) write(l);
}
Coro<> StreamWriter::drain() { return detail::require(t_)->drain(t_); }
void StreamWriter::write_eof() { detail::require(t_)->write_eof(); }
void detail::close_as_lost(StreamWriter& writer) {
    if (writer.t_) writer.t_->close_as_lost();
}
void StreamWriter::close() {
    if (t_) t_->close();
}
void StreamWriter::abort() {
    if (t_) t_->abort();
}
bool StreamWriter::is_closing() const noexcept { return !t_ || t_->closing(); }
Coro<> StreamWriter::wait_closed() { return detail::require(t_)->wait_closed(t_); }
Coro<> StreamWriter::aclose() {
    close();
    return wait_closed();
}
std::size_t StreamWriter::get_write_buffer_size() const noexcept { return t_ ? t_->unsent() : 0; }
void StreamWriter::set_write_buffer_limits(std::size_t high, std::optional<std::size_t> low) {
    if (low && *low > high)
        throw std::invalid_argument("set_write_buffer_limits: high (" + std::to_string(high) +
                                    ") must be at least low (" + std::to_string(*low) + ")");
    detail::require(t_)->set_limits(high, low ? *low : high / 4);
}

std::optional<SocketAddress> StreamWriter::get_extra_info(std::string_view name) const {
    if (!t_ || t_->fd() < 0) return std::nullopt;
    Socket view(t_->fd());
    std::optional<SocketAddress> out;
    try {
        if (name == "peername") out = view.getpeername();
        if (name == "sockname") out = view.getsockname();
    } catch (const std::system_error&) {
    }
    (void)detail::hand_over_fd(view);  // a view: the transport keeps the fd, and its registration
    return out;
}

StreamPair make_streams(Socket socket, std::size_t limit) {
    if (limit == 0) throw std::invalid_argument("corio: the stream limit must be positive");
    // Streams live on a loop (their flushes and waits are its work), as asyncio's do.
    if (!detail::running_loop())
        throw std::logic_error("corio: make_streams() needs a running event loop (a stream belongs to the loop it is made on)");
    // As sock_* do: streams over no socket would swallow writes and never finish closing.
    if (socket.fileno() < 0) throw std::system_error(EBADF, std::generic_category(), "make_streams: the socket is closed");
    // A blocking socket would block the loop in its first read (asyncio's open_connection(sock=)
    // calls setblocking(False) too).
    const int flags = ::fcntl(socket.fileno(), F_GETFL);
    if (flags < 0) throw std::system_error(errno, std::generic_category(), "make_streams: fcntl");
    if (!(flags & O_NONBLOCK) && ::fcntl(socket.fileno(), F_SETFL, flags | O_NONBLOCK) < 0)
        throw std::system_error(errno, std::generic_category(), "make_streams: fcntl(O_NONBLOCK)");
    auto t = detail::make_fd_transport(detail::hand_over_fd(socket), true, limit);
    return StreamPair(StreamReader(t), StreamWriter(t));
}

namespace {
Coro<StreamPair> connect_to(SocketAddress address, ConnectOptions options) {
    Socket s = Socket::create(address.family(), SOCK_STREAM);
    if (options.nodelay && address.family() != AF_UNIX) s.set_option(IPPROTO_TCP, TCP_NODELAY, 1);
    co_await sock_connect(s, address);
    co_return make_streams(std::move(s), options.limit);
}
}  // namespace

Coro<StreamPair> open_connection(std::string host, std::uint16_t port, ConnectOptions options) {
    // Before connecting, as asyncio's StreamReader(limit=0) refuses it.
    if (options.limit == 0) throw std::invalid_argument("open_connection: the stream limit must be positive");
    // "" names no host to connect to (asyncio: socket.gaierror); only a server takes it for
    // every address, so it is not read as 0.0.0.0 here (which Linux connects to this host).
    Coro<std::vector<SocketAddress>> resolving =
        host.empty() ? getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM) : detail::resolve(host, port, SOCK_STREAM);
    std::vector<SocketAddress> addresses = co_await std::move(resolving);
    std::exception_ptr last;
    for (const auto& a : addresses) {
        try {
            co_return co_await connect_to(a, options);
        } catch (const std::system_error&) {
            last = std::current_exception();
        }
    }
    if (last) std::rethrow_exception(last);
    throw std::system_error(EHOSTUNREACH, std::generic_category(), "open_connection: no address for " + host);
}

Coro<StreamPair> open_unix_connection(std::string path, ConnectOptions options) {
    if (options.limit == 0) throw std::invalid_argument("open_unix_connection: the stream limit must be positive");
    co_return co_await connect_to(SocketAddress::unix_path(path), options);
}

}  // namespace corio
