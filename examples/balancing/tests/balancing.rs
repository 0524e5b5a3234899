//! The example over real sockets: a member stopped mid-run costs no call, gets none after it
//! stopped, and the others take over.

use volley::Protocol;

#[tokio::test]
async fn a_stopped_member_costs_no_call() -> Result<(), Box<dyn std::error::Error>> {
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let outcome = balancing::run(protocol, 30).await?;
        assert_eq!(outcome.failed, 0, "{protocol:?}: {outcome:?}");
        assert_eq!(
            outcome.served.iter().sum::<usize>(),
            150,
            "{protocol:?}: {outcome:?}"
        );
        assert_eq!(
            outcome.served[1], outcome.served_when_stopped,
            "{protocol:?}: the stopped member got no call after it stopped: {outcome:?}"
        );
        assert!(
            outcome.served[0] > 0 && outcome.served[2] > 0,
            "{protocol:?}: {outcome:?}"
        );
        assert_eq!(
            outcome.healthy, 2,
            "{protocol:?}: the stopped member is ejected"
        );
    }
    Ok(())
}

#[tokio::test]
async fn registry_members_leave_and_join_without_a_failed_call()
-> Result<(), Box<dyn std::error::Error>> {
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let o = balancing::run_registry(protocol, 30).await?;
        assert_eq!(o.failed, 0, "{protocol:?}: {o:?}");
        assert_eq!(o.served.iter().sum::<usize>(), 150, "{protocol:?}: {o:?}");
        assert_eq!(o.served[1], o.served_when_left, "{protocol:?}: {o:?}");
        assert_eq!(o.served_before_join, 0, "{protocol:?}: {o:?}");
        assert!(o.served[2] > 0 && o.served[0] > 0, "{protocol:?}: {o:?}");
    }
    Ok(())
}

#[test]
fn the_binary_reports_no_failure() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_balancing")).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches(", 0 failed, 2 healthy").count(),
        3,
        "{stdout}"
    );
    assert_eq!(stdout.matches("), 0 failed\n").count(), 3, "{stdout}");
    Ok(())
}
