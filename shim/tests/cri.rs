//! The Kubernetes path: containerd with its CRI plugin and a runtime
//! handler `rpc-runc` of type io.containerd.rpc-runc.v2 (the README's
//! config), driven by a small CRI client of ours over containerd's socket.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ExecSyncRequest, ImageSpec, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest, VersionRequest,
};
use tonic::transport::{Endpoint, Uri};

#[test]
fn cri_pod_with_rpc_runc_handler() {
    let d = match Daemon::start("cri", true) {
        Some(d) => d,
        None => return,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    rt.block_on(pod(&d));
}

async fn pod(d: &Daemon) {
    let sock = d.sock.clone();
    let channel = Endpoint::try_from("http://[::]:50051")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(sock).await?)) }
        }))
        .await
        .expect("connect to containerd");
    let mut cri = RuntimeServiceClient::new(channel);
    let v = cri
        .version(VersionRequest { version: "v1".into() })
        .await
        .unwrap_or_else(|e| panic!("CRI Version: {e}\n{}", tail(&d.log(), 60)))
        .into_inner();
    assert_eq!(v.runtime_name, "containerd");

    let logs = d.dir.join("pod-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: "p1".into(), uid: "uid-p1".into(), namespace: "default".into(), attempt: 0 }),
        // host network and host UTS namespace: no hostname of its own
        hostname: String::new(),
        log_directory: logs.to_string_lossy().into_owned(),
        labels: HashMap::new(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                // host network: no CNI needed
                namespace_options: Some(NamespaceOption { network: NamespaceMode::Node as i32, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = cri
        .run_pod_sandbox(RunPodSandboxRequest { config: Some(sandbox_config.clone()), runtime_handler: "rpc-runc".into() })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", tail(&d.log(), 40)))
        .into_inner()
        .pod_sandbox_id;

    let cid = cri
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata { name: "c1".into(), attempt: 0 }),
                image: Some(ImageSpec { image: IMAGE.into(), ..Default::default() }),
                command: vec!["sh".into(), "-c".into(), "echo hello-cri; sleep 1000".into()],
                log_path: "c1.log".into(),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox_config.clone()),
        })
        .await
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", tail(&d.log(), 40)))
        .into_inner()
        .container_id;
    cri.start_container(StartContainerRequest { container_id: cid.clone() })
        .await
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", tail(&d.log(), 40)));

    let ex = cri
        .exec_sync(ExecSyncRequest {
            container_id: cid.clone(),
            cmd: vec!["sh".into(), "-c".into(), "echo exec-out; exit 3".into()],
            timeout: 20,
        })
        .await
        .unwrap_or_else(|e| panic!("ExecSync: {e}\n{}", tail(&d.log(), 40)))
        .into_inner();
    assert_eq!(ex.exit_code, 3);
    assert_eq!(String::from_utf8_lossy(&ex.stdout), "exec-out\n");

    // the container's stdout, in CRI's log format, through our shim's fifos
    let log = logs.join("c1.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().any(|l| l.contains(" stdout F hello-cri")) {
            break;
        }
        assert!(Instant::now() < deadline, "container log {}: {text:?}", log.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // one shim for the pod: the sandbox and its container
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 1, "one shim per pod expected: {shims:?}");
    let cmd = std::fs::read_to_string(format!("/proc/{}/cmdline", shims[0])).unwrap_or_default();
    assert!(cmd.contains("containerd-shim-rpc-runc-v2"), "not our shim: {cmd}");

    cri.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() })
        .await
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", tail(&d.log(), 40)));
    cri.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod.clone() })
        .await
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", tail(&d.log(), 40)));
    d.assert_no_shims();
}
