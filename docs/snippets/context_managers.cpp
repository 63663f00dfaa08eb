// Async context managers: a class with aclose(), a generator (@asynccontextmanager), and
// AsyncExitStack.
#include <corio/corio.hpp>

#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

std::vector<std::string> journal;  // what happened, in order: checked at the end

class Connection {
public:
    explicit Connection(std::string url) : url_(std::move(url)) {}
    corio::Coro<int> execute(std::string sql) {
        co_await corio::sleep(5ms);
        journal.push_back(url_ + ": " + sql);
        co_return 1;
    }
    corio::Coro<> close() {
        co_await corio::sleep(1ms);
        journal.push_back(url_ + ": closed");
    }

private:
    std::string url_;
};

corio::Coro<Connection> connect_to_db(std::string url) {
    co_await corio::sleep(5ms);
    co_return Connection(std::move(url));
}

// [class-based]
class AsyncDBConnection {
public:
    // __aenter__: acquiring the resource is a coroutine that returns it.
    static corio::Coro<AsyncDBConnection> connect(std::string url) {
        Connection conn = co_await connect_to_db(std::move(url));
        co_return AsyncDBConnection(std::move(conn));
    }
    // __aexit__: async_with calls it on every way out, exceptions and cancellation included.
    corio::Coro<> aclose() { return conn_.close(); }

    corio::Coro<int> execute(std::string sql) { return conn_.execute(std::move(sql)); }

private:
    explicit AsyncDBConnection(Connection conn) : conn_(std::move(conn)) {}
    Connection conn_;
};

corio::Coro<> use_db() {
    co_await corio::async_with(AsyncDBConnection::connect("db://users"),
                               [&](AsyncDBConnection& db) -> corio::Coro<> {
                                   co_await db.execute("SELECT * FROM users");
                               });
}
// [end class-based]

// [generator-based]
// The code before co_yield is __aenter__, the code after it __aexit__. It yields a pointer:
// a generator's values are moved out to the consumer, and the cleanup must close *this* one.
corio::AsyncGenerator<Connection*> db_connection(std::string url) {
    Connection conn = co_await connect_to_db(std::move(url));
    std::exception_ptr error;
    try {
        co_yield &conn;                       // the body of `async with` runs here
    } catch (...) {
        error = std::current_exception();     // no co_await inside a catch block in C++...
    }
    co_await conn.close();                    // ...so the `finally:` part comes after it
    if (error) std::rethrow_exception(error);
}

corio::Coro<> use_generator_cm() {
    co_await corio::async_with(db_connection("db://orders"), [&](Connection* conn) -> corio::Coro<> {
        co_await conn->execute("SELECT 1");
    });
}
// [end generator-based]

// [exit-stack]
corio::Coro<> copy_table() {
    corio::AsyncExitStack stack;
    std::exception_ptr error;
    try {
        AsyncDBConnection* src = co_await stack.enter_async_context(AsyncDBConnection::connect("db://a"));
        AsyncDBConnection* dst = co_await stack.enter_async_context(AsyncDBConnection::connect("db://b"));
        stack.push_async_callback([]() -> corio::Coro<> {
            journal.push_back("callback");
            co_return;
        });
        co_await src->execute("SELECT * FROM t");
        co_await dst->execute("INSERT INTO t ...");
    } catch (...) {
        error = std::current_exception();
    }
    co_await stack.aclose();  // last in, first out: callback, db://b, db://a
    if (error) std::rethrow_exception(error);
}
// [end exit-stack]

corio::Coro<int> main_coro() {
    co_await use_db();
    co_await use_generator_cm();
    // [error-path]
    try {
        co_await corio::async_with(db_connection("db://broken"), [&](Connection*) -> corio::Coro<> {
            throw std::runtime_error("bad query");  // the connection is still closed
            co_return;
        });
    } catch (const std::runtime_error& e) {
        std::cout << "error after cleanup: " << e.what() << '\n';
    }
    // [end error-path]
    co_await copy_table();
    for (const auto& line : journal) std::cout << line << '\n';
    std::vector<std::string> expected{
        "db://users: SELECT * FROM users", "db://users: closed", "db://orders: SELECT 1", "db://orders: closed",
        "db://broken: closed", "db://a: SELECT * FROM t", "db://b: INSERT INTO t ...", "callback",
        "db://b: closed", "db://a: closed"};
    co_return journal == expected ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
