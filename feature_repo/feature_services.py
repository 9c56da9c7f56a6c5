"""Feature services, named after the model version that consumes them."""

from feast import FeatureService

from customer_channels import customer_channels
from customer_spend import customer_spend

churn_v1 = FeatureService(name="churn_v1", features=[customer_spend, customer_channels],
                          description="Features of the churn model, version 1.")
