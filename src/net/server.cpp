#include "corio/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <list>
#include <system_error>

#include "corio/detail/task_set_waiter.hpp"
#include "corio/event.hpp"
#include "corio/sleep.hpp"
#include "corio/task.hpp"

namespace corio {

namespace detail {

struct ServerState {
    ClientHandler handler;
    ServerOptions options;
    // The handlers' tasks were "created" where the program started the server: the place a
    // debug report or corio-ps should point to (not this file).
    std::source_location started_at;
    EventLoop* loop = nullptr;
    std::vector<Socket> sockets;
    std::vector<Task<>> acceptors;
    // A handler's task, and its connection's writer (close_clients() closes the transport).
    struct Client {
        AnyTask task;
        StreamWriter writer;
    };
    std::list<Client> clients;
    std::string unix_path;
    // The socket file this server made: close() removes the path only while it is still that
    // file (another server may have replaced it since, as asyncio checks st_ino).
    dev_t unix_dev = 0;
    ino_t unix_ino = 0;
    bool closed = false;
    bool serving_forever = false;  // a serve_forever() waits (a second one is refused)
    Event closed_event;
    Event idle_event;  // closed, and no handler left
};

namespace {

constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

// A handler's place in the server's client list, left when the handler's frame goes. A frame
// parameter, not code at the end of the body: a handler task cancelled before its first step
// (cancel_clients() right after an accept) never runs its body, and wait_closed() must not wait
// for it forever.
class ClientSlot {
public:
    ClientSlot(std::shared_ptr<ServerState> s, std::list<ServerState::Client>::iterator me) noexcept : s_(std::move(s)), me_(me) {}
    ClientSlot(ClientSlot&& o) noexcept : s_(std::move(o.s_)), me_(o.me_) {}
    ClientSlot(const ClientSlot&) = delete;
    ClientSlot& operator=(const ClientSlot&) = delete;
    ~ClientSlot() {
        if (!s_) return;
        s_->clients.erase(me_);
        if (s_->closed && s_->clients.empty()) s_->idle_event.set();
    }

private:
    std::shared_ptr<ServerState> s_;
    std::list<ServerState::Client>::iterator me_;
};

Coro<> run_client(std::shared_ptr<ServerState> s, StreamReader reader, StreamWriter writer,
                  [[maybe_unused]] ClientSlot slot) {
    std::exception_ptr cancelled;
    try {
        Coro<> handling = s->handler(reader, writer);
        co_await std::move(handling);
    } catch (const CancelledError&) {
        cancelled = std::current_exception();
    } catch (...) {
        s->loop->call_exception_handler(
            {"Unhandled exception in client_connected_cb", std::current_exception(), current_task().name(), {}, {}});
    }
    writer.close();  // flushes what is buffered, then closes: no connection outlives its handler
    // A handler that caught its cancellation and returned (a goodbye) was still asked to stop:
    // nothing would cancel the wait again, and a peer that never reads would hold it for ever.
    if (!cancelled && detail::require_task().cancelling() == 0) {
        // asyncio 3.12+'s server counts connections, not handlers: wait_closed(), and so the
        // end of run(), waits until what the handler wrote has left (abort_clients() cuts a
        // peer that never reads). A cancellation (cancel_clients(), a cancelled
        // serve_forever()) stops the wait: the rest leaves in the background while the loop runs.
        try {
            Coro<> flushed = writer.wait_closed();
            co_await std::move(flushed);
        } catch (const CancelledError&) {
            cancelled = std::current_exception();
        } catch (...) {
            // A lost connection: it is closed, which is all this waits for.
        }
    }
    // Ends cancelled, as it was asked to (cancel_clients()): in debug mode a handler task that
    // returned normally would be reported as having swallowed its cancellation.
    if (cancelled) std::rethrow_exception(cancelled);
}

bool out_of_resources(int code) { return code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM; }

Coro<> accept_loop(std::shared_ptr<ServerState> s, int fd, bool tcp) {
    for (;;) {
        std::pair<Socket, SocketAddress> conn;
        std::exception_ptr failure;
        int code = 0;
        try {
            conn = co_await detail::sock_accept_fd(fd);
        } catch (const std::system_error& e) {
            failure = std::current_exception();
            code = e.code().value();
        }
        if (failure) {
            if (out_of_resources(code)) {
                // Out of fds: the pending connection stays queued in the kernel. Retrying at
                // once would spin; wait for fds to be freed instead.
                s->loop->call_exception_handler({"accept() out of system resources; retrying shortly", failure, {}, {}, {}});
                co_await sleep(kAcceptRetryDelay);
                continue;
            }
            if (code == ECONNABORTED || code == EPROTO || code == EINTR) continue;
            if (code == EBADF || code == ENOTSOCK || code == EINVAL || code == EOPNOTSUPP) {
                // The listening socket itself is unusable: no retry can help.
                s->loop->call_exception_handler({"accept() failed; this listening socket stops accepting", failure, {}, {}, {}});
                co_return;
            }
            // Anything else may pass (asyncio logs it and keeps its listener): report, go on.
            s->loop->call_exception_handler({"accept() failed; retrying shortly", failure, {}, {}, {}});
            co_await sleep(kAcceptRetryDelay);
            continue;
        }
        // Accepted just as close() cancelled us (sock_accept returns such a connection rather
        // than lose it): the server serves nothing more, so it closes, unserved.
        if (s->closed) co_return;
        if (tcp && s->options.nodelay) {
            int one = 1;
            ::setsockopt(conn.first.fileno(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        try {
            auto [reader, writer] = make_streams(std::move(conn.first), s->options.limit);
            auto me = s->clients.emplace(s->clients.end(), AnyTask{}, writer);
            // Should spawning fail, the slot (in the coroutine's frame, or the argument that
            // never got there) takes `me` off the list as it goes.
            me->task = detail::spawn(*s->loop, run_client(s, reader, writer, ClientSlot(s, me)), {}, s->started_at);
        } catch (const std::exception&) {
            // This connection is lost (it closes with its socket); the server goes on, as
            // asyncio's logs the error and keeps accepting.
            s->loop->call_exception_handler({"could not serve an accepted connection", std::current_exception(), {}, {}, {}});
        }
    }
}

Socket listen_on(const SocketAddress& address, const ServerOptions& options) {
    Socket sock = Socket::create(address.family(), SOCK_STREAM);
    if (address.family() != AF_UNIX) {
        if (options.reuse_address) sock.set_option(SOL_SOCKET, SO_REUSEADDR, 1);
        if (options.reuse_port) sock.set_option(SOL_SOCKET, SO_REUSEPORT, 1);
        if (address.family() == AF_INET6) sock.set_option(IPPROTO_IPV6, IPV6_V6ONLY, 1);
    }
    sock.bind(address);
    sock.listen(options.backlog);
    return sock;
}

Server start(std::shared_ptr<ServerState> s) {
    s->loop = &get_running_loop();
    for (auto& sock : s->sockets) {
        bool tcp = sock.getsockname().family() != AF_UNIX;
        s->acceptors.push_back(detail::spawn(*s->loop, accept_loop(s, sock.fileno(), tcp), "server-accept",
                                             std::source_location::current()));
    }
    return Server(std::move(s));
}

}  // namespace
}  // namespace detail

Coro<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port, ServerOptions options,
                          std::source_location where) {
    if (options.limit == 0) throw std::invalid_argument("start_server: the stream limit must be positive");
    auto s = std::make_shared<detail::ServerState>();
    s->handler = std::move(handler);
    s->options = options;
    s->started_at = where;
    std::vector<SocketAddress> addresses = co_await detail::resolve(host, port, SOCK_STREAM);
    for (const auto& a : addresses) s->sockets.push_back(detail::listen_on(a, options));
    co_return detail::start(std::move(s));
}

Coro<Server> start_unix_server(ClientHandler handler, std::string path, ServerOptions options,
                               std::source_location where) {
    if (options.limit == 0) throw std::invalid_argument("start_unix_server: the stream limit must be positive");
    auto s = std::make_shared<detail::ServerState>();
    s->handler = std::move(handler);
    s->options = options;
    s->started_at = where;
    s->unix_path = path;
    SocketAddress address = SocketAddress::unix_path(path);
    detail::remove_stale_unix_socket(address);
    s->sockets.push_back(detail::listen_on(address, options));
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        s->unix_dev = st.st_dev;
        s->unix_ino = st.st_ino;
    }
    co_return detail::start(std::move(s));
}

const std::vector<Socket>& Server::sockets() const {
    static const std::vector<Socket> none;
    return s_ ? s_->sockets : none;
}

bool Server::is_serving() const noexcept { return s_ && !s_->closed; }
std::size_t Server::active_connections() const noexcept { return s_ ? s_->clients.size() : 0; }

void Server::close() {
    if (!s_ || s_->closed) return;
    s_->closed = true;
    for (auto& t : s_->acceptors) t.cancel();
    s_->sockets.clear();  // closing them also drops their pending accepts from the backend
    if (!s_->unix_path.empty()) {
        struct stat st {};
        if (::stat(s_->unix_path.c_str(), &st) == 0 && st.st_dev == s_->unix_dev && st.st_ino == s_->unix_ino)
            ::unlink(s_->unix_path.c_str());
    }
    s_->closed_event.set();
    if (s_->clients.empty()) s_->idle_event.set();
}

void Server::close_clients() {
    if (!s_) return;
    for (auto& c : s_->clients) detail::close_as_lost(c.writer);
}

void Server::abort_clients() {
    if (!s_) return;
    for (auto& c : s_->clients) c.writer.abort();
}

void Server::cancel_clients() {
    if (!s_) return;
    for (auto& c : s_->clients) {
        if (c.task.state()->started()) {
            c.task.cancel();
            continue;
        }
        // Accepted, its first step still queued: cancelled now, its handler would never run
        // (asyncio's rule for a task cancelled before it starts), and the client would get no
        // goodbye. The cancel goes behind that first step (the ready queue is FIFO), so the
        // handler meets it at its first await, as the running ones do.
        try {
            s_->loop->call_soon([task = c.task]() mutable { task.cancel(); });
        } catch (...) {
            c.task.cancel();  // the loop takes no more callbacks
        }
    }
}

Coro<> Server::wait_closed() {
    auto s = s_;
    if (!s) co_return;
    co_await s->closed_event.wait();
    // As asyncio.wait(), not `co_await t`: a cancellation of this caller must reach this
    // caller, not be forwarded to an acceptor and come back as that acceptor's own
    // CancelledError.
    std::vector<detail::FutureBase*> acceptors;
    for (auto& t : s->acceptors) acceptors.push_back(t.state());
    {
        detail::TaskSetWaiter ended(std::move(acceptors), detail::TaskSetWaiter::Until::AllDone);
        co_await ended;
    }
    std::exception_ptr failed;  // what stopped an acceptor, if anything: after the handlers
    for (auto& t : s->acceptors) {
        if (t.cancelled() || failed) continue;
        try {
            co_await t;  // done: returns at once
        } catch (...) {
            failed = std::current_exception();
        }
    }
    co_await s->idle_event.wait();
    if (failed) std::rethrow_exception(failed);
}

Coro<> Server::serve_forever() {
    auto s = s_;
    if (!s) throw std::logic_error("serve_forever() on a server that was never started");
    if (s->closed) throw std::logic_error("serve_forever() on a closed server");
    // asyncio refuses a second one (RuntimeError "already being awaited on serve_forever()"):
    // a stray second call that then timed out would otherwise close the server under the first.
    if (s->serving_forever) throw std::logic_error("the server is already being awaited on serve_forever()");
    // Down however the wait ends: an error, or the frame destroyed as its loop closes.
    struct ServingForever {
        detail::ServerState* state;
        explicit ServingForever(detail::ServerState* st) : state(st) { state->serving_forever = true; }
        ~ServingForever() { state->serving_forever = false; }
        ServingForever(const ServingForever&) = delete;
        ServingForever& operator=(const ServingForever&) = delete;
    };
    std::exception_ptr cancelled;
    {
        ServingForever serving(s.get());
        try {
            co_await s->closed_event.wait();
        } catch (const CancelledError&) {
            cancelled = std::current_exception();
        }
    }
    if (cancelled) {
        detail::CleanupAfterCancel cleaning;  // the handlers end first, as in asyncio
        close();
        // The cancellation reaches the handlers too, as a cancelled Trio nursery's does: asyncio
        // 3.12+ only waits for them, so one Ctrl-C cannot stop a server while a client sits
        // idle (CPython issue 123720), where 3.11 left them running past the loop's end.
        cancel_clients();
        Coro<> closing = wait_closed();
        co_await std::move(closing);
        std::rethrow_exception(cancelled);
    }
}

Coro<> Server::aclose() {
    close();
    return wait_closed();
}

}  // namespace corio
