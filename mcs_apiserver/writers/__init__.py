"""The writers to the clusters: ServiceExport status, the Lease that elects the one instance that writes."""
