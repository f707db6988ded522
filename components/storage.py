"""StorageBuckets: the model's Storage buckets, each a StorageBucket (its row and its policies on storage.objects)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_supabase_access as supabase_access

from supabase_access.model.buckets import Bucket, bucket_access, caller_function
from supabase_access.model.profiles import AccessPlan


@dataclass
class StorageBucketsArgs:
    buckets: tuple[Bucket, ...]
    # The access plan of the tables: its profile, and the group functions member buckets call.
    plan: AccessPlan
    profile: str


class StorageBuckets(pulumi.ComponentResource):
    """Give it the supabase-access provider in `opts.providers`, and the AccessRules it follows in
    `opts.depends_on` (its preflight and the group functions member buckets' policies call)."""

    def __init__(self, name: str, args: StorageBucketsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("supabase-access:components:StorageBuckets", name, None, opts)
        functions = {
            lookup.membership.group: f"{lookup.helper_schema}.{lookup.member_ids_function}"
            for lookup in args.plan.group_lookups
        }
        self.buckets = {}
        for bucket in args.buckets:
            access = bucket_access(bucket, args.profile)
            group_function = None
            if access == "member":
                group_function = functions.get(bucket.group or "")
                if group_function is None:
                    raise pulumi.RunError(
                        f"bucket {bucket.id}: member of {bucket.group}, whose group functions exist only when a table "
                        "of the model hangs under that group (member: or a path to it)"
                    )
            self.buckets[bucket.id] = supabase_access.StorageBucket(
                f"{bucket.id}-bucket",
                bucket_id=bucket.id,
                access=access,
                group_function=group_function,
                caller_function=caller_function(access),
                public=bucket.public,
                file_size_limit=bucket.file_size_limit,
                allowed_mime_types=None if bucket.allowed_mime_types is None else list(bucket.allowed_mime_types),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"buckets": list(self.buckets)})
