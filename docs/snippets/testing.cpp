// [test]
#include <corio/testing.hpp>  // GoogleTest, plus corio's harness; link GTest::gtest_main

#include <map>
#include <string>

using namespace std::chrono_literals;
using Dict = std::map<std::string, std::string>;

corio::Coro<Dict> fetch_data(std::string url) {
    co_await corio::sleep(10ms);
    co_return Dict{{"url", url}, {"data", "..."}};
}

CORIO_TEST(FetchData, ReturnsTheUrl) {             // @pytest.mark.asyncio
    Dict result = co_await fetch_data("test_url");  // async def test_fetch_data():
    EXPECT_EQ(result["url"], "test_url");           //     assert result["url"] == "test_url"
}
// [end test]

class Session {
public:
    corio::Coro<std::vector<int>> execute(std::string) {
        co_await corio::sleep(1ms);
        co_return std::vector<int>{1};
    }
    corio::Coro<> close() {
        co_await corio::sleep(1ms);
        open_ = false;
    }
    bool is_open() const { return open_; }

private:
    bool open_ = true;
};

corio::Coro<Session> create_session() {
    co_await corio::sleep(1ms);
    co_return Session{};
}

// [fixture]
class DbSession : public corio::testing::AsyncTest {  // @pytest.fixture async def db_session():
protected:
    corio::Coro<> SetUpAsync() override {
        session = co_await create_session();           //     session = await create_session()
    }                                                  //     yield session
    corio::Coro<> TearDownAsync() override {
        co_await session.close();                      //     await session.close()
    }
    Session session;
};

CORIO_TEST_F(DbSession, QueryReturnsOneRow) {          // async def test_query(db_session):
    std::vector<int> rows = co_await session.execute("SELECT 1");
    EXPECT_EQ(rows.size(), 1u);                        //     assert len(rows) == 1
}
// [end fixture]

// [mock-clock]
corio::Coro<int> retry_with_backoff(int failures) {
    auto delay = 1s;
    for (int attempt = 1;; ++attempt) {
        if (attempt > failures) co_return attempt;
        co_await corio::sleep(delay);  // 1 s, 2 s, 4 s: no test should wait that long for real
        delay *= 2;
    }
}

CORIO_TEST(Retry, BacksOffExponentially) {
    corio::testing::MockClock clock;  // virtual time from here to the end of the scope
    auto start = clock.now();
    int attempts = co_await retry_with_backoff(3);
    EXPECT_EQ(attempts, 4);
    EXPECT_EQ(clock.seconds_since(start), 7.0);  // 1 + 2 + 4 virtual seconds, at once
}
// [end mock-clock]

// [co-assert]
CORIO_TEST(FetchData, HasBothKeys) {
    Dict result = co_await fetch_data("u");
    CO_ASSERT_EQ(result.size(), 2u);  // stops the test here on failure (ASSERT_* cannot:
    EXPECT_EQ(result["data"], "...");  // it uses `return`, and a coroutine must co_return)
}
// [end co-assert]

// [no-await]
CORIO_TEST(Queue, StartsEmpty) {
    corio::Queue<int> queue;
    EXPECT_TRUE(queue.empty());
    co_return;  // a body without any co_await needs this to be a coroutine at all
}
// [end no-await]

// [namespace]
using namespace corio;  // convenient, but GoogleTest owns a namespace ::testing too:

CORIO_TEST(Clock, SpellOutCorioTesting) {
    // testing::MockClock clock;      error: reference to 'testing' is ambiguous
    corio::testing::MockClock clock;  // always write it in full
    auto start = clock.now();
    co_await sleep(1h);
    EXPECT_EQ(clock.seconds_since(start), 3600.0);
}
// [end namespace]
