//! What the deployer publishes to S3 before a stack can use it: the artifact bucket of an account and
//! region (`<prefix>-<account>-<region>`: created private and encrypted where it does not exist, and
//! in StackSet mode readable by the organization's accounts), the functions' zips under
//! content-addressed keys (a re-run uploads nothing new), and templates too large to send inline.
//!
//! The functions template is template.yml with its SAM transform already expanded
//! (`scripts/expand-sam.py`): its Metadata `tapguard::Artifacts` names the parameter of each function's
//! S3 key and the binary whose `target/lambda/<binary>/bootstrap.zip` it stands for.

use std::path::Path;

use aws_config::SdkConfig;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::api_error;
use crate::targets::Ctx;

/// S3 with path-style addressing when an endpoint is configured (an emulator), virtual-hosted otherwise.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

pub fn bucket_name(prefix: &str, account: &str, region: &str) -> String {
    format!("{prefix}-{account}-{region}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The bucket policy of an artifact bucket in StackSet mode: the organization's accounts may read
/// its objects (Lambda fetches a function's code with the caller's permissions: in a member account,
/// CloudFormation's StackSet execution role), nobody reads it without TLS.
pub fn organization_policy(partition: &str, bucket: &str, organization_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OrganizationReadsArtifacts",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": format!("arn:{partition}:s3:::{bucket}/*"),
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": organization_id}}
            },
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [format!("arn:{partition}:s3:::{bucket}"), format!("arn:{partition}:s3:::{bucket}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}
            }
        ]
    })
}

/// The account of a target: the one it names, else the caller's (GetCallerIdentity).
pub async fn target_account(ctx: &Ctx) -> Result<String, String> {
    if let Some(a) = &ctx.target.account {
        return Ok(a.clone());
    }
    let sts = aws_sdk_sts::Client::new(&ctx.config);
    Ok(ctx
        .call("GetCallerIdentity", sts.get_caller_identity().send())
        .await
        .map_err(|e| e.to_string())?
        .account()
        .unwrap_or_default()
        .to_string())
}

/// The artifact bucket of `account` in `region` (the client's region): created private and
/// encrypted where it does not exist yet; with `organization_id`, its policy admits the
/// organization's accounts (put when it differs). Returns its name.
pub async fn ensure_bucket(
    ctx: &Ctx,
    s3: &aws_sdk_s3::Client,
    prefix: &str,
    account: &str,
    region: &str,
    organization_id: Option<&str>,
) -> Result<String, String> {
    let bucket = bucket_name(prefix, account, region);
    let exists = match s3
        .head_bucket()
        .bucket(&bucket)
        .expected_bucket_owner(account)
        .send()
        .await
    {
        Ok(_) => true,
        Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 404) => false,
        Err(err) => {
            let e = api_error("HeadBucket", &err);
            ctx.record(
                "api_error",
                json!({"operation": e.operation, "code": e.code, "message": e.message}),
            );
            return Err(format!("{e} (the bucket {bucket} must be this account's)"));
        }
    };
    if !exists {
        create_bucket(ctx, s3, &bucket, region).await?;
    }
    if let Some(org) = organization_id {
        let wanted = organization_policy(crate::targets::partition_for_region(region), &bucket, org);
        let current = match s3.get_bucket_policy().bucket(&bucket).send().await {
            Ok(out) => out.policy().and_then(|p| serde_json::from_str::<Value>(p).ok()),
            Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 404) => None,
            Err(err) => {
                let e = api_error("GetBucketPolicy", &err);
                return Err(e.to_string());
            }
        };
        if current.as_ref() != Some(&wanted) {
            ctx.call(
                "PutBucketPolicy",
                s3.put_bucket_policy().bucket(&bucket).policy(wanted.to_string()).send(),
            )
            .await
            .map_err(|e| e.to_string())?;
            ctx.say(format!(
                "artifact bucket {bucket}: policy admits the organization {org}'s accounts (aws:PrincipalOrgID)"
            ));
            ctx.record("artifact_bucket_policy", json!({"bucket": bucket, "organization": org}));
        }
    }
    Ok(bucket)
}

async fn create_bucket(ctx: &Ctx, s3: &aws_sdk_s3::Client, bucket: &str, region: &str) -> Result<(), String> {
    use aws_sdk_s3::types::{
        BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration, ServerSideEncryption,
        ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    };
    let mut create = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    ctx.call("CreateBucket", create.send())
        .await
        .map_err(|e| e.to_string())?;
    ctx.call(
        "PutPublicAccessBlock",
        s3.put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::Aes256)
        .build()
        .map_err(|e| e.to_string())?;
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(by_default)
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    ctx.call(
        "PutBucketEncryption",
        s3.put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(encryption)
            .send(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ctx.say(format!(
        "created the artifact bucket {bucket} (public access blocked, encrypted)"
    ));
    ctx.record("artifact_bucket_created", json!({"bucket": bucket}));
    Ok(())
}

/// Puts `body` at `key` unless an object is there already: keys are content-addressed, so one that
/// exists holds these very bytes. Returns whether it was uploaded.
pub async fn put_once(
    ctx: &Ctx,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> Result<bool, String> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => return Ok(false),
        Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
        Err(err) => return Err(api_error("HeadObject", &err).to_string()),
    }
    ctx.call(
        "PutObject",
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
            .send(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(true)
}

/// The https URL CloudFormation reads an object of the bucket from.
pub fn object_url(bucket: &str, region: &str, key: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{bucket}.s3.{region}.{suffix}/{key}")
}

/// Uploads a template too large to send inline to the target's artifact bucket, under a key of
/// its stack and content; returns its URL for TemplateURL.
pub async fn upload_template(ctx: &Ctx, prefix: &str, stack: &str, body: &str) -> Result<String, String> {
    let account = target_account(ctx).await?;
    let region = ctx.target.region.clone();
    let s3 = s3_client(&ctx.config);
    let bucket = ensure_bucket(ctx, &s3, prefix, &account, &region, None).await?;
    let key = format!("tapguard/{stack}/{}.template", sha256_hex(body.as_bytes()));
    let uploaded = put_once(ctx, &s3, &bucket, &key, body.as_bytes()).await?;
    ctx.say(format!(
        "template is {} bytes (over 51,200): {} s3://{bucket}/{key}",
        body.len(),
        if uploaded { "uploaded to" } else { "already at" }
    ));
    ctx.record(
        "template_uploaded",
        json!({"bucket": bucket, "key": key, "bytes": body.len(), "uploaded": uploaded}),
    );
    Ok(object_url(&bucket, &region, &key))
}

/// One function's packaged code.
#[derive(Debug, Clone)]
pub struct Zip {
    pub binary: String,
    /// The template parameter that takes its S3 key.
    pub key_parameter: String,
    pub bytes: Vec<u8>,
    /// `tapguard/functions/<binary>/<sha256>.zip`.
    pub key: String,
}

/// The functions template's artifacts, read before anything runs.
#[derive(Debug, Clone)]
pub struct Package {
    pub bucket_prefix_parameter: String,
    pub bucket_account_parameter: String,
    pub zips: Vec<Zip>,
}

/// Reads the functions template's `tapguard::Artifacts` metadata and each zip it names from
/// `lambda_dir` (`<binary>/bootstrap.zip`, as `make package` writes them).
pub fn package(
    template: &crate::template::Template,
    template_text: &str,
    lambda_dir: &Path,
) -> Result<Package, String> {
    if !template.transforms.is_empty() {
        return Err(format!(
            "it still has Transform {}: give the expanded template (scripts/expand-sam.py writes it)",
            template.transforms.join(", ")
        ));
    }
    let doc: Value = serde_yaml::from_str(template_text).map_err(|e| e.to_string())?;
    let meta = &doc["Metadata"]["tapguard::Artifacts"];
    let field = |name: &str| {
        meta[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("its Metadata tapguard::Artifacts has no {name} (written by scripts/expand-sam.py)"))
    };
    let bucket_prefix_parameter = field("BucketPrefixParameter")?;
    let bucket_account_parameter = field("BucketAccountParameter")?;
    let mut zips = Vec::new();
    for function in meta["Functions"].as_array().into_iter().flatten() {
        let (Some(binary), Some(key_parameter)) = (function["Binary"].as_str(), function["KeyParameter"].as_str())
        else {
            return Err(format!(
                "tapguard::Artifacts: a function without Binary or KeyParameter: {function}"
            ));
        };
        let path = lambda_dir.join(binary).join("bootstrap.zip");
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("cannot read {} ({e}): run `make package` first", path.display()))?;
        let key = format!("tapguard/functions/{binary}/{}.zip", sha256_hex(&bytes));
        zips.push(Zip {
            binary: binary.to_string(),
            key_parameter: key_parameter.to_string(),
            bytes,
            key,
        });
    }
    if zips.is_empty() {
        return Err("its Metadata tapguard::Artifacts names no function".into());
    }
    Ok(Package {
        bucket_prefix_parameter,
        bucket_account_parameter,
        zips,
    })
}

/// Puts every zip of `package` into the artifact bucket of `account` in this client's region;
/// returns the functions stack's parameters that name them, and how many were uploaded.
pub async fn publish(
    ctx: &Ctx,
    s3: &aws_sdk_s3::Client,
    package: &Package,
    prefix: &str,
    account: &str,
    region: &str,
    organization_id: Option<&str>,
) -> Result<(Vec<(String, String)>, usize), String> {
    let bucket = ensure_bucket(ctx, s3, prefix, account, region, organization_id).await?;
    let mut parameters = vec![
        (package.bucket_prefix_parameter.clone(), prefix.to_string()),
        (package.bucket_account_parameter.clone(), account.to_string()),
    ];
    let mut uploaded = Vec::new();
    for zip in &package.zips {
        if put_once(ctx, s3, &bucket, &zip.key, &zip.bytes).await? {
            uploaded.push(zip.binary.as_str());
        }
        parameters.push((zip.key_parameter.clone(), zip.key.clone()));
    }
    ctx.say(format!(
        "functions' code in s3://{bucket}: {} uploaded{}, {} already there",
        uploaded.len(),
        if uploaded.is_empty() {
            String::new()
        } else {
            format!(" ({})", uploaded.join(", "))
        },
        package.zips.len() - uploaded.len()
    ));
    ctx.record(
        "artifacts_published",
        json!({"bucket": bucket, "uploaded": uploaded, "already_there": package.zips.len() - uploaded.len()}),
    );
    Ok((parameters, uploaded.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_content_addressed_and_the_policy_admits_only_the_organization() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let policy = organization_policy("aws", "b-111111111111-eu-west-1", "o-abc123");
        let allow = &policy["Statement"][0];
        assert_eq!(allow["Effect"], "Allow");
        assert_eq!(allow["Action"], "s3:GetObject");
        assert_eq!(allow["Resource"], "arn:aws:s3:::b-111111111111-eu-west-1/*");
        assert_eq!(allow["Condition"]["StringEquals"]["aws:PrincipalOrgID"], "o-abc123");
        assert_eq!(policy["Statement"][1]["Effect"], "Deny");
        assert_eq!(
            object_url("b", "cn-north-1", "k/t"),
            "https://b.s3.cn-north-1.amazonaws.com.cn/k/t"
        );
    }

    #[test]
    fn a_template_with_its_transform_or_without_the_metadata_is_refused() {
        let dir = std::env::temp_dir().join(format!("tapguard-artifacts-{}", crate::targets::run_id()));
        std::fs::create_dir_all(dir.join("config-setup")).unwrap();
        std::fs::write(dir.join("config-setup/bootstrap.zip"), b"PK\x05\x06stand-in").unwrap();
        let sam = "Transform: AWS::Serverless-2016-10-31\nResources:\n  F: {Type: AWS::Serverless::Function}\n";
        let err = package(&crate::template::Template::parse(sam).unwrap(), sam, &dir).unwrap_err();
        assert!(err.contains("scripts/expand-sam.py"), "{err}");
        let bare = "Resources:\n  F: {Type: AWS::Lambda::Function}\n";
        let err = package(&crate::template::Template::parse(bare).unwrap(), bare, &dir).unwrap_err();
        assert!(err.contains("no BucketPrefixParameter"), "{err}");
        let expanded = r#"{"Metadata": {"tapguard::Artifacts": {"BucketPrefixParameter": "P", "BucketAccountParameter": "A",
            "Functions": [{"Binary": "config-setup", "KeyParameter": "ConfigSetupFunctionCodeKey"}]}},
            "Resources": {"F": {"Type": "AWS::Lambda::Function"}}}"#;
        let p = package(&crate::template::Template::parse(expanded).unwrap(), expanded, &dir).unwrap();
        assert_eq!(p.zips.len(), 1);
        assert_eq!(
            p.zips[0].key,
            format!(
                "tapguard/functions/config-setup/{}.zip",
                sha256_hex(b"PK\x05\x06stand-in")
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
